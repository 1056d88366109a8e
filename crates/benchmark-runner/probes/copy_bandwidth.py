"""Device-to-device copy bandwidth of a CUDA GPU, the ceiling batch-1 decode is held against.

Copies a 2 GiB buffer 20 times after 3 warm-ups, timed with CUDA events, and prints one JSON object:
bytes moved counts what is read plus what is written (a copy of N bytes moves 2N), as vendors quote it.
Run by the runner at the start of a GPU run: `python copy_bandwidth.py cuda:0`.
"""

import json
import sys

import torch


def main(device_name):
    device = torch.device(device_name)
    # Events and copies must share a stream: make the probed GPU the current one (with the default,
    # cuda:0, the events on GPU 0 timed nothing of a copy on GPU 1 and gave 153,313 GB/s).
    torch.cuda.set_device(device)
    n = 1 << 31
    src = torch.empty(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    reps = 20
    start.record()
    for _ in range(reps):
        dst.copy_(src)
    end.record()
    torch.cuda.synchronize(device)
    seconds = start.elapsed_time(end) / 1000.0
    moved = 2 * n * reps
    print(json.dumps({"device": torch.cuda.get_device_name(device), "bytes_moved": moved, "seconds": seconds,
                      "gb_per_s": moved / seconds / 1e9, "method": "torch copy_ of 2 GiB, read+write counted, 20 reps"}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "cuda:0")
