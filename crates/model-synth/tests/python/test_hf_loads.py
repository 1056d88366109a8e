"""The synthetic checkpoint as Hugging Face libraries see it: the tokenizer loads in `tokenizers`
and in transformers and round-trips text, the chat template renders, and the model loads and gives
finite, non-degenerate logits. Uses the runner's release build to synthesize (scripts/setup.sh)."""

import json
import subprocess
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoTokenizer, LlamaForCausalLM

ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    runner = ROOT / "target/release/benchmark-runner"
    subprocess.run([str(runner), "models", "synth", "--preset", "tiny", "--out", str(out)], check=True)
    return out


def test_tokenizers_library_encodes_and_decodes_any_text(tiny):
    tok = Tokenizer.from_file(str(tiny / "tokenizer.json"))
    assert tok.get_vocab_size(with_added_tokens=True) == 128256
    text = "The quick brown fox — 12345 ünïcödé!\n\tdone"
    enc = tok.encode(text)
    assert enc.ids[0] == 128000, "begin_of_text is prepended"
    assert all(i < 128256 for i in enc.ids)
    assert tok.decode(enc.ids, skip_special_tokens=True) == text
    # Merges are real: a common word takes fewer tokens than its bytes.
    assert len(tok.encode(" ", add_special_tokens=False).ids) == 1
    assert len(tok.encode(" hello world", add_special_tokens=False).ids) < len(" hello world")


def test_transformers_loads_the_tokenizer_with_llama3_specials_and_chat_template(tiny):
    tok = AutoTokenizer.from_pretrained(tiny)
    assert tok.bos_token_id == 128000 and tok.eos_token == "<|eot_id|>"
    assert tok.convert_tokens_to_ids("<|eot_id|>") == 128009
    assert tok.convert_tokens_to_ids("<|start_header_id|>") == 128006
    ids = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    rendered = tok.decode(ids)
    assert rendered.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>")
    assert rendered.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_config_is_llama_3_2_and_logits_are_finite_and_spread(tiny):
    config = json.loads((tiny / "config.json").read_text())
    assert config["rope_scaling"] == {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                      "original_max_position_embeddings": 8192, "rope_type": "llama3"}
    model = LlamaForCausalLM.from_pretrained(tiny, dtype=torch.float32).eval()
    assert model.config.tie_word_embeddings
    with torch.inference_mode():
        logits = model(torch.tensor([[128000, 791, 4062, 14198, 39935]])).logits[0]
    assert torch.isfinite(logits).all()
    std = logits.std(dim=-1)
    assert ((std > 1.0) & (std < 10.0)).all(), f"logit spread {std}"
    top = torch.softmax(logits, dim=-1).max(dim=-1).values
    assert (top < 0.9).all(), f"a one-hot distribution: {top}"
    # Different positions predict different tokens: the model is not stuck on one answer.
    assert len(set(logits.argmax(dim=-1).tolist())) > 1
