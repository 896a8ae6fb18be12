"""Helpers of the machine tiers (nspawn: marker systemd; VM: marker vm): the payload
out of an ISO, polling, and the Flux objects the k3s stand-in holds against the CRDs."""

import json
import os
import subprocess
import time
from pathlib import Path

from isobuild import payload
from isobuild.image import IsoImage
from support import crds
from support.base import FAKES

# Where the k3s stand-in keeps the cluster's objects on a booted machine (tests/fakes/k3s).
STAND_IN_STORE = "var/lib/rancher/k3s/stand-in/store.json"


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


def assert_flux_objects_valid(store: dict, work: Path) -> None:
    """Every Flux object in a booted machine's stand-in store against the Flux CRDs: as
    applied, and as Flux reports it once it has reconciled it, status included."""
    applied = [obj for obj in store.values() if obj["kind"] in crds.FLUX_KINDS]
    reported = reported_by_flux(store, work)
    assert applied and len(reported) == len(applied), (applied, reported)
    for obj in [*applied, *reported]:
        crds.assert_valid(obj)
    assert all(obj["status"]["conditions"] for obj in reported), reported


def reported_by_flux(store: dict, work: Path) -> list[dict]:
    """The store's Flux objects as the stand-in reads them back when it plays Flux's
    controllers ($FAKE_FLUX_RECONCILE): the machines run it without, so nothing reports
    status there."""
    copy = work / "store.json"
    copy.write_text(json.dumps(store))
    env = {**os.environ, "FAKE_KUBE_STORE": str(copy), "FAKE_KUBE_LOG": str(work / "kubectl.jsonl"),
           "FAKE_FLUX_RECONCILE": "ready"}
    reported = []
    for kind in crds.FLUX_KINDS:
        listed = subprocess.run([str(FAKES / "kubectl"), "get", kind.lower(), "-o", "json"],
                                env=env, capture_output=True, text=True, check=True)
        reported += json.loads(listed.stdout)["items"]
    return reported
