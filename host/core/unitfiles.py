"""The payload's systemd units: which of its files are units, and their links in
/etc/systemd/system, which reach them through `current` (the seed makes the first, a
self-update keeps them matching the version `current` names)."""

from pathlib import Path

from host.core import paths

UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".target")


def is_unit(relative: str) -> bool:
    """Whether `relative` (a path under the payload's units/, '/'-separated) is a unit or a
    drop-in for one (`<unit>.d/<name>.conf`, ours or systemd's)."""
    if relative.endswith(UNIT_SUFFIXES) and "/" not in relative:
        return True
    parts = relative.split("/")
    return len(parts) == 2 and parts[0].endswith(".d") and parts[1].endswith(".conf")


def link(root: Path | None = None) -> list[str]:
    """Link every unit of the current version into the systemd unit directory through
    `current`, and remove our links to units it no longer has; the units newly linked
    that have an [Install] section (the ones to enable)."""
    units_dir = paths.on_host(paths.CURRENT_DIR, root) / "units"
    unit_dir = paths.on_host(paths.SYSTEMD_UNIT_DIR, root)
    wanted = {p.relative_to(units_dir).as_posix() for p in units_dir.rglob("*")
              if p.is_file() and is_unit(p.relative_to(units_dir).as_posix())}
    to_enable = []
    for relative in sorted(wanted):
        target = Path(paths.CURRENT_DIR, "units", relative)
        installed = unit_dir / relative
        if installed.is_symlink() and Path(installed.readlink()) == target:
            continue
        if "\n[Install]" in "\n" + (units_dir / relative).read_text(encoding="utf-8"):
            to_enable.append(relative)
        installed.parent.mkdir(parents=True, exist_ok=True)
        fresh = installed.with_name(f".{installed.name}.new")
        fresh.unlink(missing_ok=True)
        fresh.symlink_to(target)
        fresh.replace(installed)
    _through_current(unit_dir)
    _unlink_gone(unit_dir, wanted)
    return to_enable


def _unlink_gone(unit_dir: Path, wanted: set[str]) -> None:
    """Remove our links to units `current` no longer has: its unit and drop-in links, and
    the enablement links (`<target>.wants/<unit>`, named by the unit or an instance of it)
    that point at them, which would dangle. An enablement link of a unit still there is
    kept: it is what enables it."""
    ours = f"{paths.CURRENT_DIR}/units/"
    for installed in list(unit_dir.rglob("*")):
        target = str(installed.readlink()) if installed.is_symlink() else ""
        if not target.startswith(ours):
            continue
        relative = installed.relative_to(unit_dir).as_posix()
        linked = relative if is_unit(relative) else target.removeprefix(ours)
        if linked not in wanted:
            installed.unlink()


def _through_current(unit_dir: Path) -> None:
    """`systemctl enable` resolves our links to the version directory when it makes the
    .wants/ links: point those back through `current`, so that no link names a version
    (which a later update removes)."""
    versions = f"{paths.VERSIONS_DIR}/"
    for installed in list(unit_dir.rglob("*")):
        target = str(installed.readlink()) if installed.is_symlink() else ""
        if target.startswith(versions):
            inside_version = target.removeprefix(versions).split("/", 1)[1]
            fresh = installed.with_name(f".{installed.name}.new")
            fresh.unlink(missing_ok=True)
            fresh.symlink_to(f"{paths.CURRENT_DIR}/{inside_version}")
            fresh.replace(installed)
