//! A byte-level BPE tokenizer with Llama-3's layout: 128,000 ordinary tokens, then 256 special
//! tokens at the ids the real model uses (`<|begin_of_text|>` = 128000, `<|eot_id|>` = 128009, ...).
//!
//! The real merges cannot be downloaded, so the ordinary tokens are made up: the 256 byte tokens,
//! then every pair of 64 common characters, then triples, until there are 128,000. It encodes any
//! text (every byte has a token) and both the `tokenizers` library and transformers load it.

use serde_json::{json, Map, Value};

pub const ORDINARY_TOKENS: usize = 128_000;

/// The Llama-3 pre-tokenizer pattern (as in the released tokenizer.json).
const LLAMA3_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GPT-2's printable stand-in for each byte, in its id order.
fn byte_tokens() -> Vec<char> {
    let mut bytes: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut chars: Vec<u32> = bytes.clone();
    let mut extra = 0;
    for b in 0..256u32 {
        if !bytes.contains(&b) {
            bytes.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    chars.into_iter().map(|c| char::from_u32(c).expect("valid scalar")).collect()
}

pub fn special_tokens() -> Vec<String> {
    let mut s: Vec<String> = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|reserved_special_token_0|>",
        "<|reserved_special_token_1|>",
        "<|finetune_right_pad_id|>",
        "<|reserved_special_token_2|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eom_id|>",
        "<|eot_id|>",
        "<|python_tag|>",
    ]
    .map(String::from)
    .to_vec();
    s.extend((3..=247).map(|i| format!("<|reserved_special_token_{i}|>")));
    s
}

/// (vocabulary in id order, merges in rank order)
fn ordinary_vocab_and_merges() -> (Vec<String>, Vec<(String, String)>) {
    let mut vocab: Vec<String> = byte_tokens().into_iter().map(String::from).collect();
    // 'Ġ' is the stand-in for a space: "Ġthe"-style word starts are the commonest tokens.
    let alphabet: Vec<String> =
        std::iter::once('Ġ').chain('a'..='z').chain('A'..='Z').chain('0'..='9').chain(['.']).map(String::from).collect();
    debug_assert_eq!(alphabet.len(), 64);
    let mut merges = Vec::new();
    for a in &alphabet {
        for b in &alphabet {
            merges.push((a.clone(), b.clone()));
            vocab.push(format!("{a}{b}"));
        }
    }
    let pairs: Vec<String> = vocab[256..].to_vec();
    'outer: for ab in &pairs {
        for c in &alphabet {
            if vocab.len() == ORDINARY_TOKENS {
                break 'outer;
            }
            merges.push((ab.clone(), c.clone()));
            vocab.push(format!("{ab}{c}"));
        }
    }
    (vocab, merges)
}

pub(crate) fn tokenizer_json() -> Value {
    let (ordinary, merges) = ordinary_vocab_and_merges();
    let vocab: Map<String, Value> = ordinary.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let added: Vec<Value> = special_tokens()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({ "id": ORDINARY_TOKENS + i, "content": t, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true })
        })
        .collect();
    let merges: Vec<String> = merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
    let bos = json!({ "SpecialToken": { "id": "<|begin_of_text|>", "type_id": 0 } });
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                { "type": "Split", "pattern": { "Regex": LLAMA3_SPLIT }, "behavior": "Isolated", "invert": false },
                { "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false }
            ]
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [bos, { "Sequence": { "id": "A", "type_id": 0 } }],
            "pair": [bos, { "Sequence": { "id": "A", "type_id": 0 } },
                     { "SpecialToken": { "id": "<|begin_of_text|>", "type_id": 1 } },
                     { "Sequence": { "id": "B", "type_id": 1 } }],
            "special_tokens": { "<|begin_of_text|>": { "id": "<|begin_of_text|>", "ids": [128000], "tokens": ["<|begin_of_text|>"] } }
        },
        "decoder": { "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true },
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": true,
            "vocab": vocab, "merges": merges
        }
    })
}

/// Llama-3's chat layout: header tokens around the role, `<|eot_id|>` after each message.
const CHAT_TEMPLATE: &str = "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

pub(crate) fn tokenizer_config_json() -> Value {
    let decoder: Map<String, Value> = special_tokens()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                (ORDINARY_TOKENS + i).to_string(),
                json!({ "content": t, "lstrip": false, "normalized": false,
              "rstrip": false, "single_word": false, "special": true }),
            )
        })
        .collect();
    json!({
        "added_tokens_decoder": decoder,
        "bos_token": "<|begin_of_text|>",
        "chat_template": CHAT_TEMPLATE.replace("\\n", "\n"),
        "clean_up_tokenization_spaces": true,
        "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn vocabulary_has_llama3_size_and_special_ids() {
        let (ordinary, merges) = ordinary_vocab_and_merges();
        assert_eq!(ordinary.len(), ORDINARY_TOKENS);
        assert_eq!(ordinary.iter().collect::<HashSet<_>>().len(), ORDINARY_TOKENS, "tokens are unique");
        assert_eq!(merges.len(), ORDINARY_TOKENS - 256);
        let special = special_tokens();
        assert_eq!(ORDINARY_TOKENS + special.len(), 128_256);
        assert_eq!(special[0], "<|begin_of_text|>");
        assert_eq!(special[9], "<|eot_id|>"); // 128009
        assert_eq!(special[255], "<|reserved_special_token_247|>");
    }

    #[test]
    fn every_merge_joins_two_known_tokens_into_a_later_one() {
        let (ordinary, merges) = ordinary_vocab_and_merges();
        let id: std::collections::HashMap<&str, usize> = ordinary.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
        for (rank, (a, b)) in merges.iter().enumerate() {
            let joined = id[format!("{a}{b}").as_str()];
            assert_eq!(joined, 256 + rank);
            assert!(id[a.as_str()] < joined && id[b.as_str()] < joined);
        }
    }

    #[test]
    fn byte_tokens_are_gpt2s() {
        let t = byte_tokens();
        assert_eq!(t.len(), 256);
        assert_eq!(t[0], '!');
        assert!(t.contains(&'Ġ') && t.contains(&'Ċ'));
        assert_eq!(t.iter().collect::<HashSet<_>>().len(), 256);
    }
}
