#!/usr/bin/env python3
"""Executes Jupyter notebooks headless, in place, and fails loudly on any error in any cell.

    .venv/bin/python scripts/execute_notebooks.py notebooks/latency.ipynb [...]
    options: --timeout S (per cell, default 7200: a cold `:dep` compiles polars), --kernel rust

Each notebook runs in its own kernel (nbclient), cell by cell, with the notebook's folder as the
working directory, and is saved with its outputs only when every cell succeeded. With the evcxr
kernel, a compile error is an error output, but a runtime panic or an error returned with `?` only
writes to the cell's stderr and the run goes on (nbconvert would exit 0). So a cell fails here when:

  - it has an error output (compile error, evcxr error, the kernel's subprocess gone);
  - its stderr shows a Rust panic (`panicked at`);
  - it wrote anything else to stderr: evcxr prints an error returned with `?` there and nowhere
    else (a cell whose stderr is expected carries the tag `allow-stderr`; panics fail it still);
  - it runs past the timeout, or the kernel dies.

The failure names the notebook, the cell (its index among all cells, counting from 0, and its first
line) and what went wrong; the exit status is 1 when any notebook failed.
"""

from __future__ import annotations

import argparse
import queue
import re
import signal
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class CellFailure(Exception):
    """A cell that failed, with everything the message needs."""

    def __init__(self, index: int, cell, what: str, detail: str):
        first = next((l.strip() for l in cell.source.splitlines() if l.strip()), "")
        if len(first) > 80:
            first = first[:77] + "..."
        self.index, self.first_line, self.what, self.detail = index, first, what, detail
        super().__init__(f"cell {index} ({first!r}): {what}")


def clean(text: str) -> str:
    return ANSI.sub("", text).strip()


def check_outputs(index: int, cell) -> None:
    """Raises CellFailure when the cell's outputs show an error."""
    stderr = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "error":
            trace = clean("\n".join(out.get("traceback") or [])) or clean(out.get("evalue", ""))
            raise CellFailure(index, cell, f"error output ({out.get('ename', 'Error')})", trace)
        if kind == "stream" and out.get("name") == "stderr":
            stderr.append(out.get("text", ""))
    text = clean("".join(stderr))
    if not text:
        return
    if "panicked at" in text:
        raise CellFailure(index, cell, "Rust panic", text)
    if "allow-stderr" in cell.get("metadata", {}).get("tags", []):
        return
    if re.search(r"^Error:", text, re.M):
        raise CellFailure(index, cell, "`Error:` on stderr", text)
    raise CellFailure(index, cell, "output on stderr (where evcxr prints an error returned with `?`)", text)


# How long to wait after a cell for output the kernel sends after reporting the cell done.
LATE_OUTPUT_S = 0.5


def late_output(client: NotebookClient, cell) -> None:
    """Adds to the cell the stream output that arrives just after it finished.

    evcxr forwards the cell's stderr (where an error returned with `?` is printed) from another
    thread, and on a busy machine that can come after the kernel reported the cell done; nbclient
    then drops it and the error would go unnoticed. Cells run one at a time, so anything that comes
    before the next cell starts is this cell's.
    """
    get = run_sync(client.kc.iopub_channel.get_msg)
    deadline = time.monotonic() + LATE_OUTPUT_S
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = get(timeout=left)
        except queue.Empty:
            return
        if msg["msg_type"] == "stream":
            content = msg["content"]
            cell.outputs.append(nbformat.v4.new_output("stream", name=content["name"], text=content["text"]))


def execute(path: Path, kernel: str, timeout: int, startup_timeout: int) -> None:
    """Runs every code cell; raises CellFailure on the first failing one, else saves in place."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=timeout,
        startup_timeout=startup_timeout,
        allow_errors=True,  # error outputs are judged below, with the cell named
        record_timing=False,  # no timestamps in the saved notebook: reruns diff cleanly
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                raise CellFailure(index, cell, f"timed out after {timeout} s", "") from None
            except DeadKernelError as e:
                raise CellFailure(index, cell, "the kernel died", str(e)) from None
            late_output(client, cell)
            check_outputs(index, cell)
    nbformat.validate(nb)
    nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="+", type=Path)
    p.add_argument("--kernel", default="rust", help="Jupyter kernel name (evcxr registers `rust`)")
    p.add_argument("--timeout", type=int, default=7200, help="seconds one cell may run (a cold :dep compiles polars: over an hour on 2 busy cores)")
    p.add_argument("--startup-timeout", type=int, default=120, help="seconds the kernel may take to start")
    args = p.parse_args(argv)
    # Stopped from outside (CI out of time): leave through the kernel's context manager, which shuts
    # the kernel down with its process group (evcxr's builds included), then exit 143 as SIGTERM would.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    try:
        KernelSpecManager().get_kernel_spec(args.kernel)
    except NoSuchKernel:
        print(f"no Jupyter kernel named {args.kernel!r}: scripts/notebooks.sh installs evcxr_jupyter and registers it "
              "(set JUPYTER_PATH to the folder it registered it in)", file=sys.stderr)
        return 2

    failed = []
    for path in args.notebooks:
        start = time.monotonic()
        print(f"{path}: executing ...", file=sys.stderr, flush=True)
        try:
            execute(path, args.kernel, args.timeout, args.startup_timeout)
        except CellFailure as f:
            msg = f"{path}: FAILED at cell {f.index} ({f.first_line!r}): {f.what}"
            print(msg + ("\n    " + f.detail.replace("\n", "\n    ") if f.detail else ""), file=sys.stderr, flush=True)
            failed.append(msg)
            continue
        print(f"{path}: ok ({time.monotonic() - start:.0f} s), saved with outputs", file=sys.stderr, flush=True)
    if failed:
        print(f"\n{len(failed)} of {len(args.notebooks)} notebooks failed:\n" + "\n".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
