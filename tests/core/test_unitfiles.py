"""The units' links across self-updates, with the real `systemctl enable` (--root) making
the enablement links as the seed and a self-update do: a unit stays enabled however often
the links are remade, and a unit the version switched to no longer has leaves no link
behind, dangling or not."""

import shutil
import subprocess
from pathlib import Path

import pytest

from host.core import paths, unitfiles

pytestmark = pytest.mark.skipif(shutil.which("systemctl") is None, reason="no systemctl")

SERVICE = "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
TEMPLATE = "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=getty.target\n" \
           "DefaultInstance=tty1\n"
OLD_UNITS = {"web.service": SERVICE, "console@.service": TEMPLATE}
NEW_UNITS = {**OLD_UNITS, "added.service": SERVICE}


def install_version(root: Path, version: str, units: dict[str, str]) -> None:
    directory = paths.on_host(paths.VERSIONS_DIR, root) / version / "units"
    directory.mkdir(parents=True)
    for name, text in units.items():
        (directory / name).write_text(text)


def switch(root: Path, version: str) -> None:
    current = paths.on_host(paths.CURRENT_DIR, root)
    current.unlink(missing_ok=True)
    current.symlink_to(f"versions/{version}")


def enable(root: Path, *units: str) -> None:
    subprocess.run(["systemctl", f"--root={root}", "enable", *units], check=True,
                   capture_output=True)


def is_enabled(root: Path, unit: str) -> str:
    return subprocess.run(["systemctl", f"--root={root}", "is-enabled", unit],
                          capture_output=True, text=True).stdout.strip()


def links(root: Path) -> dict[str, str]:
    """Every link in the unit directory, by its path there, to its target."""
    unit_dir = paths.on_host(paths.SYSTEMD_UNIT_DIR, root)
    return {p.relative_to(unit_dir).as_posix(): str(p.readlink())
            for p in unit_dir.rglob("*") if p.is_symlink()}


def resolves(root: Path, target: str) -> bool:
    """Whether an absolute link target exists inside `root` (links inside it followed)."""
    return paths.on_host(target, root).exists()


@pytest.fixture
def installed(tmp_path) -> Path:
    """As the seed installs it: the units linked through current, then enabled."""
    root = tmp_path / "root"
    paths.on_host(paths.SYSTEMD_UNIT_DIR, root).mkdir(parents=True)
    install_version(root, "1.0.0", OLD_UNITS)
    switch(root, "1.0.0")
    assert unitfiles.link(root) == ["console@.service", "web.service"]
    enable(root, "web.service", "console@.service")
    return root


def test_the_enablement_links_name_no_version_and_survive_every_relink(installed):
    for _ in range(3):  # an update, a rollback, another update: each remakes the links
        assert unitfiles.link(installed) == []
        assert is_enabled(installed, "web.service") == "enabled"
        assert is_enabled(installed, "console@tty1.service") == "enabled"
    assert links(installed) == {
        "web.service": f"{paths.CURRENT_DIR}/units/web.service",
        "console@.service": f"{paths.CURRENT_DIR}/units/console@.service",
        "multi-user.target.wants/web.service": f"{paths.CURRENT_DIR}/units/web.service",
        "getty.target.wants/console@tty1.service":
            f"{paths.CURRENT_DIR}/units/console@.service",
    }


def test_a_unit_gone_after_a_switch_back_leaves_no_link(installed):
    install_version(installed, "1.1.0", NEW_UNITS)
    switch(installed, "1.1.0")
    assert unitfiles.link(installed) == ["added.service"]
    enable(installed, "added.service")
    assert is_enabled(installed, "added.service") == "enabled"
    # The rollback: back to 1.0.0, whose units do not include it, and 1.1.0 removed.
    switch(installed, "1.0.0")
    shutil.rmtree(paths.on_host(paths.VERSIONS_DIR, installed) / "1.1.0")
    assert unitfiles.link(installed) == []
    assert not [name for name in links(installed) if "added" in name]
    assert all(resolves(installed, target) for target in links(installed).values())
    assert is_enabled(installed, "web.service") == "enabled"
