"""scripts/execute_notebooks.py against tiny evcxr notebooks (notebooks/tests/fixtures/).

They need the evcxr Jupyter kernel (`rust`), so scripts/notebooks.sh runs them after installing
it, with BENCH_REQUIRE_KERNEL=1 (a missing kernel then fails instead of skipping). Each test copies
its fixture to a temporary folder, because the executor saves notebooks in place.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

ROOT = Path(__file__).resolve().parents[2]
EXECUTOR = ROOT / "scripts" / "execute_notebooks.py"
FIXTURES = Path(__file__).parent / "fixtures"


def kernel_installed() -> bool:
    try:
        KernelSpecManager().get_kernel_spec("rust")
        return True
    except NoSuchKernel:
        return False


if not kernel_installed():
    if os.environ.get("BENCH_REQUIRE_KERNEL") == "1":
        raise RuntimeError("no Jupyter kernel `rust` (evcxr): scripts/notebooks.sh installs and registers it")
    pytest.skip("no Jupyter kernel `rust` (evcxr); scripts/notebooks.sh installs it and runs these tests", allow_module_level=True)


def execute(tmp_path: Path, name: str, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    nb = tmp_path / f"{name}.ipynb"
    shutil.copy(FIXTURES / nb.name, nb)
    proc = subprocess.run([sys.executable, str(EXECUTOR), *extra, str(nb)], capture_output=True, text=True, timeout=600)
    return proc, nb


def outputs(nb: Path) -> list[list[dict]]:
    return [c.get("outputs", []) for c in json.loads(nb.read_text())["cells"]]


def text(value) -> str:
    """A saved notebook stores multi-line strings as lists of lines."""
    return "".join(value) if isinstance(value, list) else value


def test_a_good_notebook_passes_and_is_saved_with_its_outputs(tmp_path):
    proc, nb = execute(tmp_path, "good")
    assert proc.returncode == 0, proc.stderr
    outs = outputs(nb)
    assert text(outs[1][0]["text"]) == "answer 42\n"
    assert text(outs[2][0]["data"]["text/html"]).strip() == "<b>bold</b>"
    assert text(outs[3][0]["text"]) == "54\n"


def test_a_panicking_cell_fails_and_is_named(tmp_path):
    before = (FIXTURES / "panic.ipynb").read_text()
    proc, nb = execute(tmp_path, "panic")
    assert proc.returncode == 1
    assert f"{nb}: FAILED at cell 2 ('let i = v.len() + 1;'): Rust panic" in proc.stderr
    assert "index out of bounds" in proc.stderr
    # A failed notebook is not saved: the copy is as it was.
    assert nb.read_text() == before


def test_an_error_returned_with_question_mark_fails_and_is_named(tmp_path):
    proc, nb = execute(tmp_path, "question_mark")
    assert proc.returncode == 1
    assert f"{nb}: FAILED at cell 2 ('let text = open_run(\"results/no-such-run\")?;'): output on stderr" in proc.stderr
    assert "results/no-such-run: not a run directory" in proc.stderr


def test_a_compile_error_fails(tmp_path):
    proc, nb = execute(tmp_path, "compile_error")
    assert proc.returncode == 1
    assert f"{nb}: FAILED at cell 0 ('let n: u32 = \"not a number\";'): error output" in proc.stderr
    assert "mismatched types" in proc.stderr


def test_a_cell_past_the_timeout_fails(tmp_path):
    proc, nb = execute(tmp_path, "timeout", "--timeout", "30")
    assert proc.returncode == 1
    assert f"{nb}: FAILED at cell 1 ('std::thread::sleep(std::time::Duration::from_secs(600));'): timed out after 30 s" in proc.stderr


def test_every_failure_is_listed_and_the_others_still_run(tmp_path):
    for name in ("good", "panic"):
        shutil.copy(FIXTURES / f"{name}.ipynb", tmp_path / f"{name}.ipynb")
    proc = subprocess.run([sys.executable, str(EXECUTOR), str(tmp_path / "panic.ipynb"), str(tmp_path / "good.ipynb")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert "1 of 2 notebooks failed" in proc.stderr
    assert f"{tmp_path / 'good.ipynb'}: ok" in proc.stderr
