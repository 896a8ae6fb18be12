"""The appliance payload: everything the installed host needs, under /alga on the ISO.

It holds the `host` package, the pure-Python packages Ubuntu Server lacks (vendored),
the systemd units, the static UI, the schemas, a CLI wrapper, the build info and the
release source the appliance resolves releases from.
"""

import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path

from host.core import paths, state, unitfiles
from host.core.version import __version__
from isobuild.errors import IsoBuildError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PAYLOAD_DIR = "alga"  # top-level directory on the ISO
SOURCE_DIRS = ("host", "units", "ui-static", "schemas")
# Pure-Python packages the host code imports that a default Ubuntu Server lacks.
VENDORED = ("click", "waitress", "urwid", "wcwidth", "typing_extensions", "qrcode")
CLI_WRAPPER = f"""#!/bin/bash
# The appliance CLI, on the distro python3 with the vendored pure-Python packages. Named
# alga-appliance in the process table, which is how preflight knows :8080 is ours.
# The version directory this wrapper is in, reached through {paths.CLI_LINK} and
# {paths.CURRENT_DIR}, resolved once: a process keeps importing the version it started
# with even if a self-update switches `current` under it.
release=$(dirname "$(dirname "$(readlink -f "${{BASH_SOURCE[0]}}")")")
export PYTHONPATH="$release:$release/vendor"
exec -a alga-appliance /usr/bin/python3 -m host "$@"
""".encode()


@dataclass(frozen=True)
class PayloadFile:
    path: str  # relative to the payload directory, '/'-separated
    data: bytes
    mode: int


def collect(build_info: dict, release_source: str,
            admin_user: str = paths.DEFAULT_ADMIN_USER,
            host_release_trust: dict | None = None) -> list[PayloadFile]:
    """Every payload file, sorted by path; the host release trust only when the build pins
    a key (without it, the appliance refuses self-updates)."""
    files = [f for d in SOURCE_DIRS for f in _tree(PROJECT_ROOT / d, d)]
    for name in VENDORED:
        files += _vendored(name)
    files += [
        PayloadFile("bin/alga-appliance", CLI_WRAPPER, 0o755),
        PayloadFile("VERSION", f"{__version__}\n".encode(), 0o644),
        PayloadFile("build-info.json", _json(build_info), 0o644),
        PayloadFile(state.RELEASE_SOURCE.filename, _json({"release_source": release_source}),
                    state.RELEASE_SOURCE.mode),
        # Which account setup gives the admin's password and keys (the seed creates it).
        PayloadFile(state.ADMIN_ACCOUNT.filename, _json({"user": admin_user}),
                    state.ADMIN_ACCOUNT.mode),
    ]
    if host_release_trust is not None:
        files.append(PayloadFile(state.HOST_RELEASE_TRUST.filename, _json(host_release_trust),
                                 state.HOST_RELEASE_TRUST.mode))
    return sorted(files, key=lambda f: f.path)


def vendored_versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in VENDORED}


def units(files: list[PayloadFile]) -> list[str]:
    return [f.path.removeprefix("units/") for f in files
            if f.path.startswith("units/") and unitfiles.is_unit(f.path.removeprefix("units/"))]


def enabled_units(files: list[PayloadFile]) -> list[str]:
    """Units with an [Install] section: the ones `systemctl enable` applies to."""
    return [f.path.removeprefix("units/") for f in files
            if f.path.removeprefix("units/") in units(files) and b"\n[Install]" in b"\n" + f.data]


def _tree(root: Path, prefix: str) -> list[PayloadFile]:
    return [
        PayloadFile(f"{prefix}/{p.relative_to(root).as_posix()}", p.read_bytes(),
                    0o755 if p.stat().st_mode & 0o111 else 0o644)
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]


def _vendored(name: str) -> list[PayloadFile]:
    dist = importlib.metadata.distribution(name)
    files = [f for f in dist.files or ()  # a package directory, or a single module
             if f.parts[0] in (name, f"{name}.py") and f.suffix != ".pyc"]
    licences = [f for f in dist.files or () if f.name.upper().startswith(("LICENSE", "COPYING"))]
    if not files or not licences:
        raise IsoBuildError(f"vendored package {name} is not installed from a wheel with its "
                            "licence", f"run: pip install --force-reinstall {name}")
    if any(f.suffix in (".so", ".pyd") for f in files):
        raise IsoBuildError(f"vendored package {name} is not pure Python",
                            "vendor only pure-Python packages; install others from the archive")
    out = [PayloadFile(f"vendor/{f.as_posix()}", Path(dist.locate_file(f)).read_bytes(), 0o644)
           for f in files if "__pycache__" not in f.parts]
    out += [PayloadFile(f"vendor/{name}.{f.name}", Path(dist.locate_file(f)).read_bytes(), 0o644)
            for f in licences]
    return out


def _json(document: dict) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
