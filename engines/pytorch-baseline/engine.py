"""PyTorch engines for the benchmark's JSON-lines protocol (crates/shared-protocol/README.md).

Both engines generate with transformers' own `model.generate()` (greedy, exactly `max_new_tokens`), the
path a Python team deploys, and differ only in its settings:

`pytorch_baseline`, the "typical business deployment" every other engine is compared to: `LlamaForCausalLM`
with eager attention, a `DynamicCache`, no torch.compile.

`pytorch_compiled` (options.compile = true), what a careful Python team would deploy: sdpa attention and a
static KV cache (`cache_implementation="static"`), with which generate compiles the forward pass
(torch.compile with CUDA graphs) by itself on a GPU.

Steps are timed by a stopping criterion, which generate calls once per generated token: on CUDA it records
an event on the stream (no host wait), and the times are read after the request; only a streamed request
reads the tokens to the host at each step. Events are written by a thread of their own.
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
from transformers import LlamaForCausalLM, StoppingCriteria, StoppingCriteriaList

PROTOCOL_VERSION = 1
ENGINE_VERSION = "0.1.0"
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
ATTENTION = ("eager", "sdpa")


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


def default_attention(compiled):
    """The baseline stays eager ("unoptimised"); the compiled engine uses torch's fused attention."""
    return "sdpa" if compiled else "eager"


def cache_implementation(compiled):
    """The static KV cache, with which generate compiles the forward pass; else generate's default."""
    return "static" if compiled else None


def greedy_config(model, cache_implementation, max_new_tokens=None):
    """The model's generation config made greedy, exactly `max_new_tokens` (no end-of-sequence stop)."""
    gc = copy.deepcopy(model.generation_config)
    gc.do_sample, gc.temperature, gc.top_p, gc.top_k = False, None, None, None
    gc.eos_token_id, gc.pad_token_id = None, 0
    gc.cache_implementation = cache_implementation
    gc.max_new_tokens, gc.min_new_tokens = max_new_tokens, None
    return gc


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

        self.attention = options.get("attn_implementation", default_attention(self.compiled))
        if self.attention not in ATTENTION:
            raise bad_request(f"`options.attn_implementation` must be one of {list(ATTENTION)}, got {self.attention!r}")

        model = LlamaForCausalLM.from_pretrained(model_path, dtype=DTYPES[self.dtype_name],
                                                 attn_implementation=self.attention)
        self.model = model.to(self.device).eval()
        self.vocab_size = self.model.get_input_embeddings().num_embeddings
        if self.compiled:
            # Compile (and capture graphs) now, so load time holds it rather than the first request.
            self.run_generate([0] * 8, 4, 1, StepTimes(self.device, time.perf_counter_ns(), None))
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
                    "attn_implementation": self.attention,
                    "kv_cache": "StaticCache" if self.compiled else "DynamicCache",
                    "compile": self.compiled and self.device.type == "cuda",
                    "step_clock": "cuda events" if self.device.type == "cuda" else "host clock",
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

    @torch.inference_mode()
    def generate(self, cmd, rid, received_ns, emit):
        prompt = self.prompt(cmd)
        max_new_tokens = positive_int(cmd, "max_new_tokens")
        batch_size = positive_int(cmd, "batch_size", 1)
        stream = cmd.get("stream", False)
        if not isinstance(stream, bool):
            raise bad_request("`stream` must be a boolean")

        started = time.perf_counter_ns()
        on_token = None
        if stream:
            def on_token(step, tokens, t_ns):
                emit({"event": "token", "id": rid, "step": step, "tokens": tokens, "t_ns": t_ns})
        clock = StepTimes(self.device, started, on_token)
        sequences = self.run_generate(prompt, max_new_tokens, batch_size, clock)
        rows = sequences[:, len(prompt):].tolist()
        stamps = clock.stamps()
        if len(stamps) != max_new_tokens or any(len(row) != max_new_tokens for row in rows):
            raise RuntimeError(f"generated {len(stamps)} steps, not {max_new_tokens}")
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

    def run_generate(self, prompt, max_new_tokens, batch_size, clock, **extra):
        """transformers' own generate, greedy, `clock` called once per step; returns its output."""
        input_ids = torch.tensor([prompt] * batch_size, dtype=torch.long, device=self.device)
        return self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_config=self.config_for(max_new_tokens, **extra),
            stopping_criteria=StoppingCriteriaList([clock]),
        )

    def config_for(self, max_new_tokens, **extra):
        gc = greedy_config(self.model, cache_implementation(self.compiled), max_new_tokens)
        for key, value in extra.items():
            setattr(gc, key, value)
        return gc

    @torch.inference_mode()
    def logits(self, cmd, rid):
        """The first step's logits and the greedy tokens, through the timed path itself (so the gate
        checks what is timed)."""
        prompt = self.prompt(cmd)
        steps = positive_int(cmd, "steps")
        clock = StepTimes(self.device, time.perf_counter_ns(), None)
        out = self.run_generate(prompt, steps, 1, clock, output_logits=True, return_dict_in_generate=True)
        steps_logits = torch.stack([step[0] for step in out.logits]).float()
        values = steps_logits[0]
        if not torch.isfinite(values).all():
            raise RuntimeError("the model produced non-finite logits")
        top2 = steps_logits.topk(2, dim=-1).values
        return {"event": "logits", "id": rid, "logits": values.tolist(),
                "tokens": out.sequences[0, len(prompt):].tolist(),
                "top2_gaps": (top2[:, 0] - top2[:, 1]).tolist()}


class StepTimes(StoppingCriteria):
    """Called by generate after each step with the sequences so far; never stops it (max_new_tokens does).

    On CUDA it records an event on the stream and returns at once, so timing adds no host wait; the
    times are read after generate returns (`stamps`). A streamed request (`on_token` given) needs each
    step's tokens on the host: it copies them (the wait generate's own stop check makes next anyway)
    and stamps the host clock. `stamps()` are ns since `started`, one per step.
    """

    def __init__(self, device, started, on_token):
        self.started, self.on_token = started, on_token
        self.cuda = device.type == "cuda" and on_token is None
        self.host_ns, self.events = [], []
        self.never = None
        if self.cuda:
            self.origin = torch.cuda.Event(enable_timing=True)
            self.origin.record()
            self.origin_ns = time.perf_counter_ns() - started

    def __call__(self, input_ids, scores, **kwargs):
        if self.never is None or self.never.shape[0] != input_ids.shape[0]:
            self.never = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.events.append(event)
        elif self.on_token is not None:
            tokens = input_ids[:, -1].tolist()
            now = time.perf_counter_ns() - self.started
            self.on_token(len(self.host_ns), tokens, now)
            self.host_ns.append(now)
        else:
            self.host_ns.append(time.perf_counter_ns() - self.started)
        return self.never

    def stamps(self):
        if not self.cuda:
            return self.host_ns
        if self.events:
            self.events[-1].synchronize()
        return [self.origin_ns + round(self.origin.elapsed_time(e) * 1e6) for e in self.events]


class Emitter:
    """Writes protocol events to stdout from a thread of its own, in the order they were handed over, so
    that a streamed token costs the generating thread only a queue put."""

    def __init__(self, out):
        self.out, self.queue = out, queue.Queue()
        self.thread = threading.Thread(target=self.write, daemon=True)
        self.thread.start()

    def __call__(self, event):
        self.queue.put(event)

    def write(self):
        while (event := self.queue.get()) is not None:
            self.out.write(json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n")
            if self.queue.empty():
                self.out.flush()
        self.out.flush()

    def close(self):
        self.queue.put(None)
        self.thread.join()


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

    emit = Emitter(protocol_out)

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
    emit.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
