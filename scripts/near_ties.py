"""How flat a checkpoint's greedy run is: the gate's near-ties, and where bf16 and float32 part ways.

    .venv/bin/python scripts/near_ties.py CHECKPOINT [--prompt-tokens 7] [--steps 32]

Runs transformers' eager Llama on the CPU, greedy, in float32 and in bf16 on one seeded random
prompt, and prints the bf16 run's top-2 logit gap at each step, the near-tie margin the correctness
gate would use (tolerance_half 5e-2 x the largest first-step logit; crates/benchmark-runner/src/gate.rs),
the first step under it, and how many leading greedy tokens the two dtypes share. Seeded random
weights give flat distributions, where the two best tokens are often within bf16 rounding.
"""
import argparse

import torch
from transformers import AutoConfig, AutoModelForCausalLM

TOLERANCE_HALF = 5e-2


def greedy(path, dtype, prompt, steps):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="eager")
    with torch.inference_mode():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=steps, min_new_tokens=steps,
                             do_sample=False, output_logits=True, return_dict_in_generate=True, eos_token_id=None, pad_token_id=0)
    logits = torch.stack([s[0] for s in out.logits]).float()
    top2 = logits.topk(2, dim=-1).values
    return out.sequences[0, prompt.shape[1]:].tolist(), (top2[:, 0] - top2[:, 1]).tolist(), logits[0].abs().max().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--prompt-tokens", type=int, default=7)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    vocab = AutoConfig.from_pretrained(a.checkpoint).vocab_size
    prompt = torch.randint(0, vocab, (1, a.prompt_tokens), generator=torch.Generator().manual_seed(a.seed))
    tokens32, _, _ = greedy(a.checkpoint, torch.float32, prompt, a.steps)
    tokens16, gaps, scale = greedy(a.checkpoint, torch.bfloat16, prompt, a.steps)
    margin = TOLERANCE_HALF * scale
    tie = next((i for i, g in enumerate(gaps) if g < margin), None)
    shared = next((i for i, (x, y) in enumerate(zip(tokens16, tokens32)) if x != y), a.steps)
    print(f"{a.checkpoint}: largest first-step bf16 logit {scale:.2f}, near-tie margin {margin:.3f}")
    print("bf16 top-2 gaps: " + " ".join(f"{g:.3f}" for g in gaps))
    print(f"first near-tie at step {tie if tie is not None else 'none'}; bf16 and float32 share {shared}/{a.steps} leading greedy tokens")


if __name__ == "__main__":
    main()
