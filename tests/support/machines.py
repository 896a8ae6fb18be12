"""Helpers of the machine tiers (nspawn: marker systemd; VM: marker vm): the payload
out of an ISO, polling, and the appliance's phase names."""

import time
from pathlib import Path

from isobuild import payload
from isobuild.image import IsoImage


def extract_payload(iso_path: Path, target: Path) -> Path:
    with IsoImage(iso_path) as iso:
        for path in iso.files():
            if path.startswith(f"/{payload.PAYLOAD_DIR}/"):
                local = target / path.removeprefix(f"/{payload.PAYLOAD_DIR}/")
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(iso.read(path))
    return target


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
