"""The same edits through xorriso's `-boot_image any replay` give the same tree, and both
images pass the same verifier."""

import hashlib

import xorriso_replay
from support.images import TEST_OPTIONS

from isobuild.disklayout import GRUB_BOOT_INFO_OFFSET
from isobuild.image import IsoImage
from isobuild.layout import BIOS_IMAGE
from isobuild.verify import verify


def location_free(path: str, data: bytes) -> bytes:
    """eltorito.img with the fields each writer patches for its own layout zeroed."""
    if path != BIOS_IMAGE:
        return data
    image = bytearray(data)
    image[8:64] = bytes(56)  # boot info table
    image[GRUB_BOOT_INFO_OFFSET:GRUB_BOOT_INFO_OFFSET + 8] = bytes(8)
    return bytes(image)


def tree(path) -> dict[str, tuple[str, int]]:
    """Rock Ridge path -> (sha256, permission bits) of every file; symlink targets too."""
    with IsoImage(path) as iso:
        found = {p: (hashlib.sha256(location_free(p, iso.read(p))).hexdigest(),
                     iso.record(p).rock_ridge.get_file_mode() & 0o777) for p in iso.files()}
        found["/ubuntu"] = (iso.record("/ubuntu").rock_ridge.symlink_path().decode(), 0)
    found.pop("/boot.catalog")  # each writer lays out its own catalog
    return found


def test_pycdlib_build_matches_xorriso_replay(replica_iso, appliance, tmp_path):
    reference = tmp_path / "xorriso.iso"
    xorriso_replay.replay(replica_iso, reference, tmp_path / "edits", TEST_OPTIONS)

    assert verify(reference)["ok"], verify(reference)
    assert verify(appliance.output)["ok"]
    ours, theirs = tree(appliance.output), tree(reference)
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs
    assert set(appliance.manifest["files_added"]) <= set(ours)
