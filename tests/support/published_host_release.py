"""A host release as the release engineers publish it, for the tests: a copy of the working
tree with a bumped version published by `isobuild host-release` to the tests' real registry,
and an appliance installed as the seed installs it, pinning the signing key and the
repository (support.host_releases makes releases from any files instead)."""

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from host.core import paths, state, token, unitfiles
from host.core.version import __version__
from isobuild import payload, publish
from support.registry import PUSHER

PROJECT = Path(__file__).resolve().parents[2]


def bumped_tree(base: Path, version: str) -> Path:
    """The working tree's payload sources and isobuild, with __version__ set to `version`."""
    copy = base / f"tree-{version}"
    for name in (*payload.SOURCE_DIRS, "isobuild"):
        shutil.copytree(PROJECT / name, copy / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    module = copy / "host/core/version.py"
    module.write_text(module.read_text().replace(f'"{__version__}"', f'"{version}"'))
    return copy


def publish_release(tree: Path, ca, key, repository: str, out: Path,
                    notes_file: Path | None = None) -> None:
    notes = ["--notes-file", str(notes_file)] if notes_file else []
    environment = {**os.environ, "PYTHONPATH": str(tree),
                   "REQUESTS_CA_BUNDLE": str(ca.ca_pem_path),
                   publish.USER_ENV: PUSHER[0], publish.TOKEN_ENV: PUSHER[1]}
    run = subprocess.run([sys.executable, "-m", "isobuild", "host-release", "--output",
                          str(out), "--sign-key", str(key.secret), "--repository", repository,
                          *notes],
                         cwd=tree, env=environment, capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stderr


def installed_root(base: Path, ca, repository: str, key) -> Path:
    """An appliance as the seed installs it: this tree's payload under versions/<version>,
    `current` linking to it, the units linked through it, pinning `key` and `repository`."""
    root = base / "root"
    version_dir = paths.on_host(paths.VERSIONS_DIR, root) / __version__
    for file in payload.collect({"built_by": "tests"}, "oci://registry.example/site"):
        path = version_dir / file.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(file.data)
        path.chmod(file.mode)
    for directory in (paths.CONFIG_DIR, paths.STATE_DIR, paths.LOG_DIR,
                      paths.SYSTEMD_UNIT_DIR, "/etc/issue.d"):
        paths.on_host(directory, root).mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="24.04"\n')
    paths.on_host(paths.CURRENT_DIR, root).symlink_to(f"versions/{__version__}")
    unitfiles.link(root)
    token.ensure_token(root, owner=pwd.getpwuid(os.getuid()).pw_name)
    state.write(state.ENDPOINTS, {"ca_bundle": str(ca.ca_pem_path)}, root)
    state.write(state.HOST_RELEASE_TRUST, {"repository": repository, "keys": [
        {"fingerprint": key.fingerprint, "armored": key.public.read_text()}]}, root)
    return root
