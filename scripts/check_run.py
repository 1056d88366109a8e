"""Checks a finished run directory the way a reviewer would: every engine measured without
failures, every scenario of the config present in the raw data and in summary.json, the
correctness gate passed, and summary.json rebuildable from the raw data alone.

    python3 scripts/check_run.py results/<run>

Exits 1 with one line per problem found.
"""

import json
import subprocess
import sys
from pathlib import Path


def records(run, stream):
    path = run / "raw_data" / f"{stream}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def main(run):
    problems = []
    summary = json.loads((run / "summary.json").read_text())
    requests, cells = records(run, "requests"), records(run, "cells")
    failures = [f for f in records(run, "failures") if f["kind"] != "skipped"]
    for f in failures:
        problems.append(f"failure recorded: {f['engine']} {f['stage']}: {f['message']}")
    scenarios = {c["scenario"] for c in cells}
    for e in summary["engines"]:
        name = e["name"]
        if e["status"] != "ok":
            problems.append(f"{name}: status {e['status']}")
        if e["correctness"]["passed"] is not True:
            problems.append(f"{name}: correctness gate {e['correctness']}")
        measured = [r for r in requests if r["engine"] == name and not r["warmup"]]
        for s in scenarios:
            if not any(r["scenario"] == s for r in measured):
                problems.append(f"{name}: no measured request in the {s} scenario")
        for r in measured:
            if r["generated_tokens"] != r["batch_size"] * r["max_new_tokens"]:
                problems.append(f"{name}: request {r['workload']} b{r['batch_size']} generated {r['generated_tokens']} tokens")
            if r["total_ns"] != r["ttft_ns"] + sum(r["token_ns"]):
                problems.append(f"{name}: request {r['workload']} timings do not add up")
        figures = e["scenarios"]
        for s, key in (("throughput", "throughput"), ("concurrent", "load"), ("memory", "memory")):
            if s in scenarios and not figures[key]:
                problems.append(f"{name}: summary has no {key} figures")
        if not (e["decode_tok_per_s"] and e["decode_tok_per_s"]["median"] > 0):
            problems.append(f"{name}: no decode throughput")
    # Host probes around every measured latency / throughput request; interleaved cells hold each
    # of their engines once per block.
    static = [r for r in requests if not r["warmup"] and r["scenario"] in ("latency", "throughput")]
    for r in static:
        if r.get("host_probe_before_ns") is None or r.get("host_probe_after_ns") is None:
            problems.append(f"{r['engine']}: request {r['workload']} b{r['batch_size']} p{r['prompt_tokens']} has no host probes")
    blocks = {}
    for r in static:
        if r.get("block") is not None:
            blocks.setdefault((r["workload"], r["batch_size"], r["prompt_tokens"], r["block"]), []).append(r["engine"])
    for key, engines in blocks.items():
        if len(engines) != len(set(engines)):
            problems.append(f"block {key}: an engine measured twice: {engines}")
    widths = {}
    for (w, b, p, _), engines in blocks.items():
        widths.setdefault((w, b, p), set()).add(len(engines))
    for key, ws in widths.items():
        if len(ws) != 1:
            problems.append(f"cell {key}: blocks hold different numbers of engines {sorted(ws)}")
    if not summary.get("host_states"):
        problems.append("summary.json has no host_states")
    if not (summary.get("probe_parts") or {}).get("cells"):
        problems.append("summary.json has no probe_parts cells (continuous samples without the probe's parts?)")
    # The summary is derived: rebuilding it from raw data gives the same figures.
    runner = Path(__file__).resolve().parents[1] / "target/release/benchmark-runner"
    before = (run / "summary.json").read_text()
    subprocess.run([str(runner), "analyze", str(run)], check=True, stdout=subprocess.DEVNULL)
    if json.loads((run / "summary.json").read_text())["engines"] != json.loads(before)["engines"]:
        problems.append("summary.json differs when rebuilt from raw_data")
    for p in problems:
        print(f"{run}: {p}")
    if not problems:
        print(f"{run}: {len(summary['engines'])} engines, scenarios {sorted(scenarios)}, {len(requests)} requests: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
