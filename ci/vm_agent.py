#!/usr/bin/env python3
"""The VM tier's agent, run in the guest on its distro python: the test's hands inside
the machine, over a virtio serial port (no network, no login).

Each request is one JSON line {"id", "argv", "timeout"}; the answer is one JSON line
{"id", "code", "stdout", "stderr"}. Stdlib only.
"""

import json
import os
import subprocess
import sys
import time


def answer(request: dict) -> dict:
    try:
        done = subprocess.run(request["argv"], capture_output=True, text=True,
                              errors="replace", timeout=request.get("timeout", 60))
        return {"id": request["id"], "code": done.returncode, "stdout": done.stdout,
                "stderr": done.stderr}
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"id": request["id"], "code": -1, "stdout": "", "stderr": str(exc)}


def serve(port: str) -> None:
    while not os.path.exists(port):  # udev names the port shortly after boot
        time.sleep(0.5)
    # A virtio port can be open only once: one descriptor for both directions.
    with open(os.open(port, os.O_RDWR), "r+b", buffering=0) as channel:
        for line in channel:
            send(channel, json.dumps(answer(json.loads(line))).encode() + b"\n")


def send(channel, data: bytes) -> None:
    """All of `data`: a raw write to the port takes only what fits in its buffer, so a long
    answer (a support bundle's SUMMARY.md and bundle.json, some 30 KB) would lose its end,
    newline included, and the test would wait for it in vain."""
    view = memoryview(data)
    while view:
        view = view[channel.write(view):]


if __name__ == "__main__":
    serve(sys.argv[1])
