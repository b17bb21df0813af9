//! The synthetic task's own small tokenizer: a byte-level BPE trained (with the `tokenizers`
//! crate) on every text the generator produces, plus the Qwen chat and vision special tokens.
//! Any UTF-8 text still encodes (byte fallback through the byte-level alphabet).

use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    Tokenizer, TokenizerBuilder,
};

use crate::error::{LavitError, Result};

/// The special tokens of Qwen2-VL's chat template and vision placeholders (ids 0..8).
pub const SPECIAL_TOKENS: [&str; 8] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
];

/// Trains a byte-level BPE of `vocab_size` tokens on `texts`.
pub fn train_task_tokenizer(texts: &[String], vocab_size: usize) -> Result<Tokenizer> {
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let byte_level = ByteLevel::new(false, false, true);
    let mut tok = TokenizerBuilder::<
        ModelWrapper,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default().into())
    .with_pre_tokenizer(Some(byte_level.into()))
    .with_decoder(Some(byte_level.into()))
    .build()
    .map_err(|e| LavitError::Other(format!("building the tokenizer: {e}")))?;
    tok.train(&mut trainer, texts.iter())
        .map_err(|e| LavitError::Other(format!("training the tokenizer: {e}")))?;
    let mut tok = Tokenizer::from(tok);
    // Make sure the specials are registered as added (special) tokens with fixed ids.
    let added: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tok.add_special_tokens(&added);
    Ok(tok)
}
