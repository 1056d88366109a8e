#!/usr/bin/env python3
"""Checkpoints in the forms users have, written by transformers itself, and the check that every
CPU engine either reads each one as the same model or refuses it at load.

  checkpoint_forms.py write OUT_DIR        # one tiny Llama per form, with save_pretrained
  checkpoint_forms.py check RUN_DIR...     # each run: every engine passed the gate or refused at load

scripts/checkpoint-forms.sh runs both around the runner (configs/checkpoint-forms.yaml). The gate
compares every engine with pytorch_baseline, which is transformers: passing it means reading the
checkpoint as transformers does. Running and failing the gate is the one outcome not allowed.
"""

import json
import shutil
import sys
from pathlib import Path

# llama3 rope scaling as Llama-3.2 ships it; transformers 5 keeps it in rope_parameters.
ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 32.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}

BASE = dict(
    vocab_size=128256,  # the synthetic tokenizer's (models/tiny)
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    bos_token_id=128000,
    eos_token_id=[128001, 128008, 128009],
)

# name: (what it is, config changes, save_pretrained keywords, dtype of the weights)
FORMS = {
    "sharded": ("shards of at most 1 MB with model.safetensors.index.json", {}, {"max_shard_size": "1MB"}, "float32"),
    "transformers-4-config": ("config.json in the transformers 4 form (rope_theta, rope_scaling, torch_dtype)", {}, {}, "float32"),
    "untied-head": ("its own lm_head.weight", {"tie_word_embeddings": False}, {}, "float32"),
    "head-dim-32": ("head_dim 32 where hidden_size / heads is 16", {"head_dim": 32}, {}, "float32"),
    "gqa-3-odd-mlp": (
        "6 query heads on 2 KV heads (GQA 3), intermediate_size 171",
        {"hidden_size": 96, "num_attention_heads": 6, "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 171},
        {},
        "float32",
    ),
    "bf16-weights": ("weights stored in bf16 (engines on the CPU compute in f32)", {}, {}, "bfloat16"),
    "f16-weights": ("weights stored in f16", {}, {}, "float16"),
}


def to_transformers_4(config: dict) -> dict:
    """The same config as transformers 4 wrote it."""
    config = dict(config)
    params = dict(config.pop("rope_parameters"))
    config["rope_theta"] = params.pop("rope_theta")
    config["rope_scaling"] = params
    if "dtype" in config:
        config["torch_dtype"] = config.pop("dtype")
    return config


def write(out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = Path(__file__).resolve().parent.parent / "models" / "tiny"
    for name, (what, changes, save, dtype) in FORMS.items():
        target = out / name
        shutil.rmtree(target, ignore_errors=True)
        torch.manual_seed(7)
        config = LlamaConfig(**{**BASE, **changes}, rope_parameters=dict(ROPE))
        model = LlamaForCausalLM(config).to(getattr(torch, dtype)).eval()
        # Default init leaves the logits almost flat over 128,256 tokens; larger weights give
        # greedy choices far from ties.
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() > 1:
                    p.mul_(4.0)
        model.save_pretrained(target, **save)
        config_file = target / "config.json"
        written = json.loads(config_file.read_text())
        if "rope_parameters" not in written:
            sys.exit(f"{name}: transformers {__import__('transformers').__version__} did not write rope_parameters")
        if name == "transformers-4-config":
            config_file.write_text(json.dumps(to_transformers_4(written), indent=2) + "\n")
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(tokenizer / f, target / f)
        (target / "form.json").write_text(json.dumps({"form": name, "what": what}, indent=2) + "\n")
        files = sorted(p.name for p in target.iterdir())
        print(f"{name}: {what} -> {target} ({', '.join(files)})")


def check(runs: list[Path]) -> int:
    problems = []
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        failures = [json.loads(l) for l in (run / "raw_data" / "failures.jsonl").read_text().splitlines() if l.strip()] \
            if (run / "raw_data" / "failures.jsonl").exists() else []
        for engine in summary["engines"]:
            name, gate = engine["name"], engine.get("correctness")
            load = [f["message"] for f in failures if f["engine"] == name and "load failed" in f["message"]]
            # A refusal says why in the protocol's own terms; an upstream error surfacing at load
            # (an internal error) is not one.
            refused = [m for m in load if "(unsupported)" in m or "(bad request)" in m]
            if gate and gate.get("passed"):
                outcome = f"read as the same model (max rel. logit error {gate['max_rel_logit_err']:.1e}, {gate['greedy_match_steps']}/{gate['steps']} greedy tokens)"
            elif refused:
                outcome = "refused at load: " + refused[0].split("load failed: ", 1)[1]
            elif load:
                outcome = "FAILED AT LOAD WITHOUT A REFUSAL: " + load[0].splitlines()[0]
                problems.append(f"{run.name}: {name}: {outcome}")
            else:
                outcome = f"RAN AND FAILED THE GATE: {gate}"
                problems.append(f"{run.name}: {name}: {outcome}")
            print(f"{run.name:24} {name:18} {outcome}")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "write":
        write(Path(sys.argv[2]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "check":
        sys.exit(check([Path(p) for p in sys.argv[2:]]))
    else:
        sys.exit(__doc__)
