"""The PyTorch engines' plain path: transformers' `generate()` called directly, with nothing of the harness.

No protocol, no stopping criterion, no streamer, no per-step clock: the model is loaded with the same
settings as engine.py's two engines, and each call to `generate` is timed from outside (device synchronised
before and after): one with 1 new token (the time to first token) and one with N. Beside them, in the same
process and alternating with them, the N-token call once more with engine.py's step clock (`StepTimes`, the
one thing the engine adds inside generate): its wall time against the plain call's is what the clock costs,
and its per-step stamps give decode times defined exactly as the engine's. Every timed call is one line of
`--out` (JSON lines); `benchmark-runner harness-tax RUN_DIR` sets them beside the engines' own figures.

    python engines/pytorch-baseline/plain_path.py --model models/llama-3.2-1b-synthetic --device cuda:0 --dtype bf16 \
        --prompts 128,1024 --new-tokens 64 --reps 10 --out results/<run>/plain_paths.jsonl

Prompts are seeded random token ids of the run's lengths (a dense model's speed does not depend on
which ids they are).
"""

import argparse
import gc
import json
import os
import random
import sys
import time

import torch
from transformers import LlamaForCausalLM, StoppingCriteriaList

from engine import DTYPES, StepTimes, cache_implementation, default_attention, greedy_config

# engine.py's two engines: whether compiled (their settings follow from it there), and in words.
PATHS = {
    "pytorch_baseline": (False, "generate(), eager attention, DynamicCache"),
    "pytorch_compiled": (True, "generate(), sdpa attention, static cache (auto-compiled)"),
}
WARMUP = 3


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def timed_generate(model, input_ids, config, device, clocked=False):
    """Wall ns of one generate call; with `clocked`, also engine.py's step stamps (ns since the start)."""
    sync(device)
    started = time.perf_counter_ns()
    clock = StepTimes(device, started, None) if clocked else None
    out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), generation_config=config,
                         stopping_criteria=StoppingCriteriaList([clock] if clock else []))
    sync(device)
    elapsed = time.perf_counter_ns() - started
    if out.shape[1] != input_ids.shape[1] + config.max_new_tokens:
        raise RuntimeError(f"generate returned {out.shape[1] - input_ids.shape[1]} tokens, not {config.max_new_tokens}")
    return elapsed, (clock.stamps() if clock else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--engines", default=",".join(PATHS))
    ap.add_argument("--prompts", default="128,1024")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not os.path.isdir(args.model):
        sys.exit(f"plain_path: --model {args.model!r} is not a checkpoint directory")
    device = torch.device(args.device)
    prompts = [int(p) for p in args.prompts.split(",")]
    if args.new_tokens < 2:
        sys.exit("plain_path: --new-tokens must be at least 2 (the decode rate is from N - 1 steps)")
    engines = args.engines.split(",")
    unknown = [e for e in engines if e not in PATHS]
    if unknown:
        sys.exit(f"plain_path: unknown engine(s) {unknown}; known: {list(PATHS)}")

    with open(args.out, "a") as out:
        for engine in engines:
            compiled, path = PATHS[engine]
            model = LlamaForCausalLM.from_pretrained(args.model, dtype=DTYPES[args.dtype],
                                                     attn_implementation=default_attention(compiled))
            model = model.to(device).eval()
            vocab = model.get_input_embeddings().num_embeddings
            rng = random.Random(args.seed)
            for p in prompts:
                input_ids = torch.tensor([[rng.randrange(vocab) for _ in range(p)]], dtype=torch.long, device=device)
                configs = {n: greedy_config(model, cache_implementation(compiled), n) for n in (1, args.new_tokens)}
                # (new tokens, with engine.py's step clock)
                calls = [(1, False), (args.new_tokens, False), (args.new_tokens, True)]
                for _ in range(WARMUP):
                    for n, clocked in calls:
                        timed_generate(model, input_ids, configs[n], device, clocked)
                for rep in range(args.reps):
                    for n, clocked in calls:
                        total_ns, stamps = timed_generate(model, input_ids, configs[n], device, clocked)
                        row = {"engine": engine, "path": path, "device": str(device), "dtype": args.dtype,
                               "prompt_tokens": p, "new_tokens": n, "rep": rep, "total_ns": total_ns}
                        if stamps is not None:
                            row["step_clock"] = {"ttft_ns": stamps[0], "last_ns": stamps[-1], "steps": len(stamps)}
                        out.write(json.dumps(row) + "\n")
                out.flush()
                print(f"plain_path: {engine} p{p}: done", file=sys.stderr)
            del model
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
