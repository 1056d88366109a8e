"""A protocol-speaking stand-in for an engine, misbehaving on purpose (options.mode) so the
runner's fault handling can be tested without a model:

ok        answers everything; token k of a request is (last prompt token + k + 1) % 1000
wrong     like ok, but its logits and tokens are off (the correctness gate must flag it)
crash     exits with status 3 on its third generate
hang      stops answering on its second generate
garbage   prints a non-protocol line instead of its second done
fail_load answers load with an error

options.oom_batch (any mode): a generate with batch_size >= it answers out_of_memory.
options.token_ms (any mode): milliseconds per generated token (default 0.5).
"""
import json
import os
import sys
import time

mode = "ok"
oom_batch = None
token_s = 0.0005
generates = 0


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def logits_for(last):
    row = [0.0] * 1000
    row[(last + 1) % 1000] = 5.0 if mode != "wrong" else 4.0
    return row


for line in sys.stdin:
    cmd = json.loads(line)
    kind = cmd["cmd"]
    if kind == "shutdown":
        break
    if kind == "load":
        mode = cmd.get("options", {}).get("mode", "ok")
        oom_batch = cmd.get("options", {}).get("oom_batch")
        token_s = cmd.get("options", {}).get("token_ms", 0.5) / 1000
        if mode == "fail_load":
            emit({"event": "error", "kind": "internal", "message": "weights are corrupt (on purpose)"})
            continue
        info = {"name": cmd["options"].get("name", "fake"), "version": "fake 0", "backend": "python",
                "device": cmd["device"], "dtype": cmd["dtype"], "settings": {"mode": mode}}
        emit({"event": "ready", "protocol": 1, "engine": info, "load_ns": 1000})
    elif kind == "logits":
        last = cmd["prompt"][-1]
        shift = 2 if mode == "wrong" else 1
        tokens = [(last + shift + k) % 1000 for k in range(cmd["steps"])]
        emit({"event": "logits", "id": cmd["id"], "logits": logits_for(last), "tokens": tokens})
    elif kind == "generate":
        generates += 1
        if mode == "crash" and generates == 3:
            os._exit(3)
        if mode == "hang" and generates == 2:
            time.sleep(3600)
        if oom_batch is not None and cmd.get("batch_size", 1) >= oom_batch:
            emit({"event": "error", "id": cmd["id"], "kind": "out_of_memory", "message": "CUDA out of memory (pretend)"})
            continue
        start = time.perf_counter_ns()
        last, n, b = cmd["prompt"][-1], cmd["max_new_tokens"], cmd.get("batch_size", 1)
        rows = [[(last + k + 1) % 1000 for k in range(n)] for _ in range(b)]
        stamps = []
        for k in range(n):
            time.sleep(token_s)
            stamps.append(time.perf_counter_ns() - start)
            if cmd.get("stream"):
                emit({"event": "token", "id": cmd["id"], "step": k, "tokens": [r[k] for r in rows], "t_ns": stamps[-1]})
        if mode == "garbage" and generates == 2:
            print("loading shards 3/4 ...", flush=True)
            continue
        gaps = [b_ - a for a, b_ in zip(stamps, stamps[1:])]
        emit({"event": "done", "id": cmd["id"], "tokens": rows, "prompt_tokens": len(cmd["prompt"]),
              "batch_size": b, "queue_ns": 0, "ttft_ns": stamps[0], "token_ns": gaps, "total_ns": stamps[-1]})
