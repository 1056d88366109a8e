#!/usr/bin/env python3
"""Prints the rows of book/results.md's per-run tables from the runs' summary.json files, so that
every figure there is read from committed data, not typed:

    python3 scripts/results_table.py 4 5        # rows of runs h200-4-gpu0/1 and h200-5-gpu0/1
"""
import json
import pathlib
import sys

RESULTS = pathlib.Path(__file__).resolve().parent.parent / "results"


def ci(x, digits):
    if not x:
        return ""
    m, c = x["median"], x.get("ci95")
    return f"{m:.{digits}f} ({c[0]:.{digits}f}–{c[1]:.{digits}f})" if c else f"{m:.{digits}f}"


def rows(run_numbers):
    for n in run_numbers:
        for gpu in ("gpu0", "gpu1"):
            run = f"h200-{n}-{gpu}"
            s = json.loads((RESULTS / run / "summary.json").read_text())
            for e in s["engines"]:
                link = f"[{run}](../results/{run}/summary.json)"
                if not e.get("decode_tok_per_s"):
                    yield f"| {link} | `{e['name']}` | failed: {(e.get('failure') or '')[:80]} | | | | | | |"
                    continue
                cpu = e.get("device") == "cpu"
                b = e["business"]
                own = "n/a (own CPU workload)" if cpu else "–"
                sp = "1 (the baseline)" if e["name"] == s["baseline"] else (ci(e.get("speedup_vs_baseline"), 2) or own)
                sc = "1 (the reference)" if e["name"] == s["compiled_reference"] else (ci(e.get("speedup_vs_compiled"), 2) or own)
                bw = b.get("fraction_of_copy_bandwidth")
                bw = "n/a (CPU)" if cpu else (f"{bw * 100:.1f} %" if bw is not None else "–")
                mj = e["scenarios"].get("energy_per_token_mj")
                mj = "n/a (CPU)" if cpu else (f"{mj:.0f}" if mj is not None else "–")
                cost = b.get("cost_per_mtok_single_stream_usd")
                cost = f"{cost:.2f}" if cost is not None else "–"
                gate = {True: "gate passed", False: "⚠ gate failed", None: "gate not run"}[e["correctness"]["passed"]]
                status = e["status"] + (f" ({e['failed_cells']} cells failed)" if e["status"] == "partial" else "")
                yield f"| {link} | `{e['name']}` | {ci(e['decode_tok_per_s'], 1)} | {sp} | {sc} | {bw} | {mj} | {cost} | {status}, {gate} |"


if __name__ == "__main__":
    print("\n".join(rows(sys.argv[1:])))
