"""Drives engine.py over the protocol with a tiny random Llama checkpoint built by transformers itself."""

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

ENGINE = Path(__file__).resolve().parents[1] / "engine.py"
PROMPT = [1, 17, 42, 99, 5]
TIMEOUT_S = 120


class EngineProcess:
    """engine.py as a subprocess, with a reader thread so a silent engine fails the test instead of hanging it."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, str(ENGINE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True
        )
        self.events = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))  # anything that is not JSON fails here, loudly
        self.events.put(None)

    def send(self, command):
        line = command if isinstance(command, str) else json.dumps(command)
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def recv(self):
        event = self.events.get(timeout=TIMEOUT_S)
        assert event is not None, "engine closed stdout"
        return event

    def close(self):
        """Ends the engine with end of input; returns its exit code."""
        self.proc.stdin.close()
        return self.proc.wait(timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def reference(model_dir):
    return LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def engine():
    """One engine process serves the whole module, since starting one spends seconds importing transformers.

    Tests run in file order: the first one sees the engine before any `load`. The last `shutdown` must exit 0.
    """
    process = EngineProcess()
    yield process
    process.send({"cmd": "shutdown"})
    assert process.proc.wait(timeout=TIMEOUT_S) == 0


def load_command(model_dir, **fields):
    return {"cmd": "load", "protocol": 1, "model_path": str(model_dir), "device": "cpu", "dtype": "f32", **fields}


@pytest.fixture(scope="module")
def ready(engine, model_dir):
    engine.send(load_command(model_dir, options={"threads": 1}))
    return engine.recv()


@torch.inference_mode()
def greedy_without_cache(model, prompt, n):
    tokens = list(prompt)
    for _ in range(n):
        logits = model(torch.tensor([tokens]), use_cache=False).logits[0, -1]
        tokens.append(int(torch.argmax(logits)))
    return tokens[len(prompt):]


def test_errors_before_load_are_events_and_the_engine_keeps_serving(engine, model_dir):
    engine.send({"cmd": "generate", "id": "early", "prompt": PROMPT, "max_new_tokens": 2})
    assert engine.recv() == {"event": "error", "id": "early", "kind": "bad_request",
                             "message": "generate before a successful load"}

    engine.send("this is not json")
    error = engine.recv()
    assert (error["event"], error["kind"]) == ("error", "bad_request") and "id" not in error

    engine.send(load_command(model_dir, protocol=99))
    error = engine.recv()
    assert (error["event"], error["kind"]) == ("error", "unsupported") and "id" not in error


def test_ready_describes_the_engine(ready):
    assert ready["event"] == "ready", ready
    assert ready["protocol"] == 1
    info = ready["engine"]
    assert info["name"] == "pytorch_baseline"
    assert info["version"].startswith("pytorch-baseline 0.1.0 (torch ")
    assert info["backend"] == "torch-eager"
    assert (info["device"], info["dtype"]) == ("cpu", "f32")
    assert info["settings"]["attn_implementation"] == "eager"
    assert info["settings"]["threads"] == 1
    assert ready["load_ns"] > 0
    assert ready["memory_bytes"] > 0


def test_generate_streams_exact_greedy_tokens(engine, ready, reference):
    n = 6
    engine.send({"cmd": "generate", "id": "g1", "prompt": PROMPT, "max_new_tokens": n, "batch_size": 2,
                 "stream": True})
    streamed = [engine.recv() for _ in range(n)]
    done = engine.recv()
    assert done["event"] == "done", done
    assert [e["event"] for e in streamed] == ["token"] * n
    assert [e["step"] for e in streamed] == list(range(n))
    assert all(e["id"] == "g1" and len(e["tokens"]) == 2 for e in streamed)

    rows = done["tokens"]
    assert len(rows) == 2 and all(len(row) == n for row in rows)
    assert rows[0] == rows[1]
    assert rows[0] == greedy_without_cache(reference, PROMPT, n)
    assert [e["tokens"][0] for e in streamed] == rows[0]

    assert (done["id"], done["prompt_tokens"], done["batch_size"]) == ("g1", len(PROMPT), 2)
    assert len(done["token_ns"]) == n - 1
    assert done["total_ns"] == done["ttft_ns"] + sum(done["token_ns"])
    assert streamed[0]["t_ns"] == done["ttft_ns"] and streamed[-1]["t_ns"] == done["total_ns"]
    assert done["queue_ns"] >= 0


def test_requests_in_flight_are_answered_in_arrival_order(engine, ready):
    for rid in ("q1", "q2"):
        engine.send({"cmd": "generate", "id": rid, "prompt": PROMPT, "max_new_tokens": 3})
    first, second = engine.recv(), engine.recv()  # no `stream`: no token events
    assert (first["event"], first["id"], second["event"], second["id"]) == ("done", "q1", "done", "q2")
    assert first["tokens"] == second["tokens"]
    assert second["queue_ns"] > 0
    assert len(first["token_ns"]) == 2 and all(t > 0 for t in first["token_ns"])
    assert first["total_ns"] == first["ttft_ns"] + sum(first["token_ns"])


def test_logits_match_the_reference_model(engine, ready, reference):
    engine.send({"cmd": "logits", "id": "l1", "prompt": PROMPT, "steps": 3})
    result = engine.recv()
    assert result["event"] == "logits", result
    assert result["id"] == "l1"
    with torch.inference_mode():
        expected = reference(torch.tensor([PROMPT])).logits[0, -1]
    got = torch.tensor(result["logits"])
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert result["tokens"][0] == int(torch.argmax(got))
    assert result["tokens"] == greedy_without_cache(reference, PROMPT, 3)
    # The gap between the two largest logits at each step; the first from the logits above.
    assert len(result["top2_gaps"]) == 3 and all(g >= 0 for g in result["top2_gaps"])
    top2 = expected.topk(2).values
    assert abs(result["top2_gaps"][0] - float(top2[0] - top2[1])) < 1e-4


def test_the_compiled_variant_uses_a_static_cache_and_decodes_the_same_tokens(model_dir, reference):
    compiled = EngineProcess()
    try:
        compiled.send(load_command(model_dir, options={"name": "pytorch_compiled", "compile": True, "threads": 1}))
        ready = compiled.recv()
        assert ready["event"] == "ready", ready
        assert ready["engine"]["name"] == "pytorch_compiled"
        assert ready["engine"]["settings"]["kv_cache"] == "StaticCache"
        assert ready["engine"]["settings"]["attn_implementation"] == "sdpa"
        assert ready["engine"]["backend"] == "torch-compile"
        n = 5
        compiled.send({"cmd": "generate", "id": "c1", "prompt": PROMPT, "max_new_tokens": n, "batch_size": 2,
                       "stream": True})
        streamed = [compiled.recv() for _ in range(n)]
        done = compiled.recv()
        assert [e["event"] for e in streamed] == ["token"] * n and done["event"] == "done", done
        assert done["tokens"] == [greedy_without_cache(reference, PROMPT, n)] * 2
        assert done["total_ns"] == done["ttft_ns"] + sum(done["token_ns"])
        compiled.send({"cmd": "logits", "id": "c2", "prompt": PROMPT, "steps": 3})
        result = compiled.recv()
        with torch.inference_mode():
            expected = reference(torch.tensor([PROMPT])).logits[0, -1]
        torch.testing.assert_close(torch.tensor(result["logits"]), expected, atol=1e-5, rtol=0)
        assert result["tokens"] == greedy_without_cache(reference, PROMPT, 3)
    finally:
        assert compiled.close() == 0


def test_reload_takes_the_name_option_and_rejects_unknown_tokens(engine, ready, model_dir):
    engine.send(load_command(model_dir, dtype="bf16", options={"name": "pytorch_compiled"}))
    reloaded = engine.recv()
    assert reloaded["event"] == "ready", reloaded
    assert (reloaded["engine"]["name"], reloaded["engine"]["dtype"]) == ("pytorch_compiled", "bf16")

    engine.send({"cmd": "logits", "id": "oov", "prompt": [256], "steps": 1})
    error = engine.recv()
    assert (error["event"], error["id"], error["kind"]) == ("error", "oov", "bad_request")

    engine.send(load_command(model_dir, options={"attn_implementation": "flash"}))
    error = engine.recv()
    assert (error["event"], error["kind"]) == ("error", "bad_request") and "attn_implementation" in error["message"]
