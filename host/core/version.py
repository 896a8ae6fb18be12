"""The project version, shared by the host package, isobuild and the build manifest, and
the one ordering of versions (the app's releases and the host's own)."""

__version__ = "0.1.0"


def version_key(version: str) -> tuple:
    """Release versions in order: 1.0 < 1.0.1 < 1.1-nightly.2 < 1.1 (a suffix sorts before
    its release, numeric parts by number, as semver orders pre-releases)."""
    core, _, suffix = version.partition("-")
    numbers = [int(part) for part in core.split(".")]
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in suffix.split("."))
    return (*numbers, *[0] * (3 - len(numbers)), 0 if suffix else 1, parts if suffix else ())
