"""A host release as the release engineers publish it, for the tests: a copy of the working
tree with a bumped version published by `isobuild host-release` to the tests' real registry,
and an appliance installed as the seed installs it, pinning the signing key and the
repository (support.host_releases makes releases from any files instead)."""

import os
import pwd
from pathlib import Path

from host.core import paths, state, token, unitfiles
from host.core.version import __version__
from isobuild import payload
from support.host_releases import run_host_release


def publish_release(tree: Path, ca, key, repository: str, out: Path,
                    notes_file: Path | None = None) -> None:
    """`tree` (support.host_releases.tree_with_version) published, signed with `key`."""
    notes = ["--notes-file", str(notes_file)] if notes_file else []
    run = run_host_release(tree, ca, "--output", str(out), "--sign-key", str(key.secret),
                           "--repository", repository, *notes)
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
