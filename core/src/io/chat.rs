//! The Qwen2-VL chat template (`chat_template.json` of the Qwen2-VL / Qwen2.5-VL checkpoints),
//! rendered directly, and tokenisation through the `tokenizers` crate.
//!
//! ```text
//! <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n      (unless a system turn is given)
//! <|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Question<|im_end|>\n
//! <|im_start|>assistant\n                                          (add_generation_prompt)
//! ```
//! The processor then repeats each `<|image_pad|>` once per merged image token.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::error::{LavitError, Result};

pub const IM_START: &str = "<|im_start|>";
pub const IM_END: &str = "<|im_end|>";
pub const VISION_START: &str = "<|vision_start|>";
pub const VISION_END: &str = "<|vision_end|>";
pub const IMAGE_PAD: &str = "<|image_pad|>";
pub const DEFAULT_SYSTEM: &str = "You are a helpful assistant.";

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Content {
    Image,
    Text { text: String },
}

/// A chat turn: `system`, `user` or `assistant`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Vec<Content>,
}

impl Message {
    pub fn user(content: Vec<Content>) -> Self {
        Self {
            role: "user".into(),
            content,
        }
    }
    pub fn assistant(text: impl Into<String>) -> Self {
        Self {
            role: "assistant".into(),
            content: vec![Content::Text { text: text.into() }],
        }
    }
    pub fn system(text: impl Into<String>) -> Self {
        Self {
            role: "system".into(),
            content: vec![Content::Text { text: text.into() }],
        }
    }
    /// `<image>` then the question: the layout every Visual-CoT / benchmark prompt uses.
    pub fn user_image_question(n_images: usize, question: &str) -> Self {
        let mut content = vec![Content::Image; n_images];
        content.push(Content::Text {
            text: question.into(),
        });
        Self::user(content)
    }
}

/// Renders `messages` with the Qwen2-VL chat template.
pub fn render(messages: &[Message], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    for (i, m) in messages.iter().enumerate() {
        if i == 0 && m.role != "system" {
            out.push_str(&format!("{IM_START}system\n{DEFAULT_SYSTEM}{IM_END}\n"));
        }
        out.push_str(&format!("{IM_START}{}\n", m.role));
        for c in &m.content {
            match c {
                Content::Image => out.push_str(&format!("{VISION_START}{IMAGE_PAD}{VISION_END}")),
                Content::Text { text } => out.push_str(text),
            }
        }
        out.push_str(&format!("{IM_END}\n"));
    }
    if add_generation_prompt {
        out.push_str(&format!("{IM_START}assistant\n"));
    }
    out
}

/// Repeats the `i`-th `<|image_pad|>` `counts[i]` times (HF processor expansion).
pub fn expand_image_pads(text: &str, counts: &[usize]) -> Result<String> {
    let parts: Vec<&str> = text.split(IMAGE_PAD).collect();
    let slots = parts.len() - 1;
    if slots != counts.len() {
        return Err(LavitError::Prompt(format!(
            "the prompt has {slots} image slot(s) but {} image(s) were given",
            counts.len()
        )));
    }
    let mut out =
        String::with_capacity(text.len() + counts.iter().sum::<usize>() * IMAGE_PAD.len());
    for (i, part) in parts.iter().enumerate() {
        out.push_str(part);
        if i < slots {
            for _ in 0..counts[i] {
                out.push_str(IMAGE_PAD);
            }
        }
    }
    Ok(out)
}

/// A `tokenizer.json` tokenizer with the ids of the chat and vision special tokens.
#[derive(Clone)]
pub struct ChatTokenizer {
    pub inner: Tokenizer,
    pub im_start: u32,
    pub im_end: u32,
    pub image_pad: u32,
    pub vision_start: u32,
    pub vision_end: u32,
    pub endoftext: Option<u32>,
}

impl std::fmt::Debug for ChatTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTokenizer")
            .field("vocab", &self.inner.get_vocab_size(true))
            .field("image_pad", &self.image_pad)
            .finish()
    }
}

impl ChatTokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = crate::error::read_file(path)?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self> {
        let inner = Tokenizer::from_bytes(bytes).map_err(|e| LavitError::Tokenizer {
            path: name.into(),
            message: format!("not a tokenizer.json ({e})"),
        })?;
        Self::new(inner, name)
    }

    pub fn new(inner: Tokenizer, name: &str) -> Result<Self> {
        let id = |tok: &str| {
            inner.token_to_id(tok).ok_or_else(|| LavitError::Tokenizer {
                path: name.into(),
                message: format!("special token {tok} is missing"),
            })
        };
        Ok(Self {
            im_start: id(IM_START)?,
            im_end: id(IM_END)?,
            image_pad: id(IMAGE_PAD)?,
            vision_start: id(VISION_START)?,
            vision_end: id(VISION_END)?,
            endoftext: inner.token_to_id("<|endoftext|>"),
            inner,
        })
    }

    /// Token ids of `text` (special tokens recognised, nothing added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| LavitError::Tokenizer {
                path: "<tokenizer>".into(),
                message: e.to_string(),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| LavitError::Tokenizer {
                path: "<tokenizer>".into(),
                message: e.to_string(),
            })
    }

    pub fn token_to_id(&self, tok: &str) -> Option<u32> {
        self.inner.token_to_id(tok)
    }

    /// Renders `messages`, expands image pads to `image_tokens[i]` each and tokenises.
    pub fn encode_chat(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        image_tokens: &[usize],
    ) -> Result<Vec<u32>> {
        let text = expand_image_pads(&render(messages, add_generation_prompt), image_tokens)?;
        self.encode(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_qwen2_vl_template() {
        let m = [Message::user_image_question(1, "What is it?")];
        assert_eq!(
            render(&m, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n\
             <|vision_start|><|image_pad|><|vision_end|>What is it?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn pad_expansion_checks_counts() {
        assert_eq!(
            expand_image_pads("a<|image_pad|>b", &[2]).unwrap(),
            "a<|image_pad|><|image_pad|>b"
        );
        assert!(expand_image_pads("no slot", &[4]).is_err());
        assert!(expand_image_pads("a<|image_pad|>b", &[]).is_err());
    }
}
