"""PyTorch engines for the benchmark's JSON-lines protocol (crates/shared-protocol/README.md).

`pytorch_baseline`, the "typical business deployment" every other engine is compared to: Hugging Face
transformers `LlamaForCausalLM` with eager attention, a `DynamicCache`, no torch.compile, and a
hand-written greedy loop.

`pytorch_compiled` (options.compile = true), what a careful Python team would deploy: the same model with
a static KV cache through `generate(cache_implementation="static")`, which compiles the forward pass
(torch.compile with CUDA graphs) by itself on a GPU. Tokens are timed by a streamer that synchronises.
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

import copy

import torch
import transformers
from transformers import DynamicCache, LlamaForCausalLM
from transformers.generation.streamers import BaseStreamer

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
        self.compiled = options.get("compile", False)
        if not isinstance(self.compiled, bool):
            raise bad_request("`options.compile` must be a boolean")

        model = LlamaForCausalLM.from_pretrained(model_path, dtype=DTYPES[self.dtype_name], attn_implementation="eager")
        self.model = model.to(self.device).eval()
        self.vocab_size = self.model.get_input_embeddings().num_embeddings
        if self.compiled:
            # Greedy, exactly max_new_tokens (no end-of-sequence stop), static cache.
            gc = copy.deepcopy(self.model.generation_config)
            gc.do_sample, gc.temperature, gc.top_p, gc.top_k = False, None, None, None
            gc.eos_token_id, gc.pad_token_id = None, 0
            gc.cache_implementation = "static"
            self.generation_config = gc
            # Compile (and capture graphs) now, so load time holds it rather than the first request.
            self.generate_compiled([0] * 8, 4, 1, lambda tokens, t_ns: None)
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
                "backend": "torch-compile" if self.compiled else "torch-eager",
                "device": str(self.device),
                "dtype": self.dtype_name,
                "settings": {
                    "attn_implementation": "eager",
                    "kv_cache": "StaticCache" if self.compiled else "DynamicCache",
                    "compile": self.compiled and self.device.type == "cuda",
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
        rows = [[] for _ in range(batch_size)]
        stamps = []

        def on_token(tokens, now_ns):
            for row, token in zip(rows, tokens):
                row.append(token)
            if stream:
                emit({"event": "token", "id": rid, "step": len(stamps), "tokens": tokens, "t_ns": now_ns})
            stamps.append(now_ns)

        if self.compiled:
            self.generate_compiled(prompt, max_new_tokens, batch_size, on_token, started)
        else:
            cache = DynamicCache(config=self.model.config)
            input_ids = torch.tensor([prompt] * batch_size, dtype=torch.long, device=self.device)
            for _ in range(max_new_tokens):
                _, next_ids = self.step(input_ids, cache)
                tokens = self.to_host(next_ids)
                on_token(tokens, time.perf_counter_ns() - started)
                input_ids = next_ids.unsqueeze(1)
        if len(stamps) != max_new_tokens:
            raise RuntimeError(f"generated {len(stamps)} tokens, not {max_new_tokens}")
        ttft_ns, last_ns = stamps[0], stamps[-1]
        token_ns = [b - a for a, b in zip(stamps, stamps[1:])]
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

    def generate_compiled(self, prompt, max_new_tokens, batch_size, on_token, started=None):
        """transformers' own generate with the static cache; `on_token(tokens, t_ns)` per step."""
        started = time.perf_counter_ns() if started is None else started
        clock = StepClock(self, started, on_token)
        input_ids = torch.tensor([prompt] * batch_size, dtype=torch.long, device=self.device)
        self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_config=self.config_for(max_new_tokens),
            streamer=clock,
        )

    def config_for(self, max_new_tokens, **extra):
        gc = copy.deepcopy(self.generation_config)
        gc.max_new_tokens, gc.min_new_tokens = max_new_tokens, None
        for key, value in extra.items():
            setattr(gc, key, value)
        return gc

    @torch.inference_mode()
    def logits(self, cmd, rid):
        prompt = self.prompt(cmd)
        steps = positive_int(cmd, "steps")
        if self.compiled:
            # Through the compiled path itself, so the gate checks what is timed.
            input_ids = torch.tensor([prompt], dtype=torch.long, device=self.device)
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=self.config_for(steps, output_logits=True, return_dict_in_generate=True),
            )
            values = out.logits[0][0].float()
            if not torch.isfinite(values).all():
                raise RuntimeError("the model produced non-finite logits")
            return {"event": "logits", "id": rid, "logits": values.tolist(),
                    "tokens": out.sequences[0, len(prompt):].tolist()}
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


class StepClock(BaseStreamer):
    """Receives each generated step from `generate`, synchronises the device and stamps the time."""

    def __init__(self, engine, started, on_token):
        self.engine, self.started, self.on_token = engine, started, on_token
        self.prompt_seen = False

    def put(self, value):
        if not self.prompt_seen:  # generate first hands over the prompt itself
            self.prompt_seen = True
            return
        tokens = self.engine.to_host(value.reshape(-1))
        self.on_token(tokens, time.perf_counter_ns() - self.started)

    def end(self):
        pass


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
