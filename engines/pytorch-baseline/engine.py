"""PyTorch eager baseline engine for the benchmark's JSON-lines protocol (crates/shared-protocol/README.md).

The "typical business deployment" every other engine is compared to: Hugging Face transformers
`LlamaForCausalLM` with eager attention, a `DynamicCache`, no torch.compile, and a hand-written greedy loop.
Commands arrive on stdin, events leave on stdout (one JSON object per line), logs go to stderr.
Run it as `python engine.py`; it takes no arguments.
"""

import json
import os
import queue
import re
import sys
import threading
import time
import traceback

import torch
import transformers
from transformers import DynamicCache, LlamaForCausalLM

PROTOCOL_VERSION = 1
ENGINE_VERSION = "0.1.0"
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


class RequestError(Exception):
    """A failure with a protocol error kind (`bad_request`, `unsupported`, ...)."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def bad_request(message):
    return RequestError("bad_request", message)


def positive_int(cmd, name, default=None):
    value = cmd.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request(f"`{name}` must be an integer >= 1, got {value!r}")
    return value


def parse_device(name):
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda:(\d+)", name) if isinstance(name, str) else None
    if match is None:
        raise bad_request(f"`device` must be \"cpu\" or \"cuda:N\", got {name!r}")
    if not torch.cuda.is_available():
        raise RequestError("unsupported", f"{name} requested but CUDA is not available to torch {torch.__version__}")
    if int(match.group(1)) >= torch.cuda.device_count():
        raise bad_request(f"{name} requested but only {torch.cuda.device_count()} CUDA device(s) are visible")
    return torch.device(name)


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Engine:
    """A loaded model and the greedy loop that drives it."""

    def __init__(self, cmd):
        started = time.perf_counter_ns()
        if cmd.get("protocol") != PROTOCOL_VERSION:
            raise RequestError(
                "unsupported",
                f"runner speaks protocol {cmd.get('protocol')!r}, this engine speaks {PROTOCOL_VERSION}",
            )
        model_path = cmd.get("model_path")
        if not isinstance(model_path, str) or not os.path.isdir(model_path):
            raise bad_request(f"`model_path` is not a directory: {model_path!r}")
        self.device = parse_device(cmd.get("device"))
        if cmd.get("dtype") not in DTYPES:
            raise bad_request(f"`dtype` must be one of {sorted(DTYPES)}, got {cmd.get('dtype')!r}")
        self.dtype_name = cmd["dtype"]
        options = cmd.get("options") or {}
        if not isinstance(options, dict):
            raise bad_request("`options` must be an object")
        if "threads" in options:
            torch.set_num_threads(positive_int(options, "threads"))
        self.name = options.get("name", "pytorch_baseline")

        model = LlamaForCausalLM.from_pretrained(model_path, dtype=DTYPES[self.dtype_name], attn_implementation="eager")
        self.model = model.to(self.device).eval()
        self.vocab_size = self.model.get_input_embeddings().num_embeddings
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.load_ns = time.perf_counter_ns() - started
        print(f"engine: loaded {model_path} on {self.device} as {self.dtype_name} in {self.load_ns / 1e9:.2f} s",
              file=sys.stderr)

    def ready_event(self):
        if self.device.type == "cuda":
            memory = torch.cuda.memory_allocated(self.device)
        else:
            memory = resident_bytes()
        return {
            "event": "ready",
            "protocol": PROTOCOL_VERSION,
            "engine": {
                "name": self.name,
                "version": f"pytorch-baseline {ENGINE_VERSION} "
                           f"(torch {torch.__version__}, transformers {transformers.__version__})",
                "backend": "torch-eager",
                "device": str(self.device),
                "dtype": self.dtype_name,
                "settings": {
                    "attn_implementation": "eager",
                    "kv_cache": "DynamicCache",
                    "compile": False,
                    "threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                },
            },
            "load_ns": self.load_ns,
            "memory_bytes": memory,
        }

    def prompt(self, cmd):
        prompt = cmd.get("prompt")
        if not isinstance(prompt, list) or not prompt:
            raise bad_request("`prompt` must be a non-empty list of token ids")
        for t in prompt:
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < self.vocab_size:
                raise bad_request(f"prompt token {t!r} is not an id below the vocabulary size {self.vocab_size}")
        return prompt

    def step(self, input_ids, cache):
        """Runs `input_ids` [B, T] through the model, extending `cache`; returns last-position logits and argmax."""
        logits = self.model(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
        logits = logits[:, -1, :]
        return logits, torch.argmax(logits, dim=-1)

    def to_host(self, token_ids):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return token_ids.tolist()

    @torch.inference_mode()
    def generate(self, cmd, rid, received_ns, emit):
        prompt = self.prompt(cmd)
        max_new_tokens = positive_int(cmd, "max_new_tokens")
        batch_size = positive_int(cmd, "batch_size", 1)
        stream = cmd.get("stream", False)
        if not isinstance(stream, bool):
            raise bad_request("`stream` must be a boolean")

        started = time.perf_counter_ns()
        cache = DynamicCache(config=self.model.config)
        input_ids = torch.tensor([prompt] * batch_size, dtype=torch.long, device=self.device)
        rows = [[] for _ in range(batch_size)]
        ttft_ns, last_ns, token_ns = 0, 0, []
        for step in range(max_new_tokens):
            _, next_ids = self.step(input_ids, cache)
            tokens = self.to_host(next_ids)
            now_ns = time.perf_counter_ns() - started
            if step == 0:
                ttft_ns = now_ns
            else:
                token_ns.append(now_ns - last_ns)
            last_ns = now_ns
            for row, token in zip(rows, tokens):
                row.append(token)
            if stream:
                emit({"event": "token", "id": rid, "step": step, "tokens": tokens, "t_ns": now_ns})
            input_ids = next_ids.unsqueeze(1)
        return {
            "event": "done",
            "id": rid,
            "tokens": rows,
            "prompt_tokens": len(prompt),
            "batch_size": batch_size,
            "queue_ns": started - received_ns,
            "ttft_ns": ttft_ns,
            "token_ns": token_ns,
            "total_ns": last_ns,
        }

    @torch.inference_mode()
    def logits(self, cmd, rid):
        prompt = self.prompt(cmd)
        steps = positive_int(cmd, "steps")
        cache = DynamicCache(config=self.model.config)
        logits, next_ids = self.step(torch.tensor([prompt], dtype=torch.long, device=self.device), cache)
        values = logits[0].float()
        if not torch.isfinite(values).all():
            raise RuntimeError("the model produced non-finite logits")
        tokens = self.to_host(next_ids)
        while len(tokens) < steps:
            _, next_ids = self.step(next_ids.unsqueeze(1), cache)
            tokens += self.to_host(next_ids)
        return {"event": "logits", "id": rid, "logits": values.tolist(), "tokens": tokens}


def error_event(rid, exc):
    if isinstance(exc, RequestError):
        kind, message = exc.kind, str(exc)
    elif isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        kind, message = "out_of_memory", str(exc)
    else:
        traceback.print_exc(file=sys.stderr)
        kind, message = "internal", f"{type(exc).__name__}: {exc}"
    event = {"event": "error", "kind": kind, "message": message}
    if rid is not None:
        event["id"] = rid
    return event


def read_commands(lines):
    """Reader thread: queues (line number, raw line, receive time) so queue_ns covers time spent waiting.

    It reads fd 0 with os.read rather than through sys.stdin: a daemon thread blocked inside sys.stdin's
    buffered reader makes interpreter shutdown abort on the reader's lock.
    """
    line_no, pending = 0, b""
    while chunk := os.read(0, 1 << 16):
        *complete, pending = (pending + chunk).split(b"\n")
        received_ns = time.perf_counter_ns()
        for line in complete:
            line_no += 1
            if line.strip():
                lines.put((line_no, line, received_ns))
    if pending.strip():
        lines.put((line_no + 1, pending, time.perf_counter_ns()))
    lines.put(None)


def main():
    # Only protocol events may reach stdout: keep a private handle on it and send fd 1 (and any stray
    # print from a library) to stderr, the engine's log.
    protocol_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(event):
        protocol_out.write(json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n")
        protocol_out.flush()

    lines = queue.Queue()
    threading.Thread(target=read_commands, args=(lines,), daemon=True).start()
    engine = None
    while (item := lines.get()) is not None:
        line_no, line, received_ns = item
        try:
            cmd = json.loads(line)
            if not isinstance(cmd, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            emit(error_event(None, bad_request(f"input line {line_no}: not a protocol command: {e}")))
            continue
        name = cmd.get("cmd")
        if name == "shutdown":
            break
        rid = cmd.get("id") if isinstance(cmd.get("id"), str) else None
        try:
            if name == "load":
                rid = None
                engine = None  # release the previous model before loading the next one
                engine = Engine(cmd)
                emit(engine.ready_event())
            elif name in ("generate", "logits"):
                if rid is None:
                    raise bad_request(f"`{name}` needs a string `id`")
                if engine is None:
                    raise bad_request(f"{name} before a successful load")
                if name == "generate":
                    emit(engine.generate(cmd, rid, received_ns, emit))
                else:
                    emit(engine.logits(cmd, rid))
            else:
                raise bad_request(f"unknown command {name!r}")
        except Exception as e:
            emit(error_event(rid, e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
