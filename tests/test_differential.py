"""The same edits through xorriso's `-boot_image any replay` give the same tree, and both
images pass the same verifier."""

import hashlib
import os
import subprocess

from conftest import TEST_OPTIONS

from isobuild import payload
from isobuild.baseiso import check_layout
from isobuild.disklayout import GRUB_BOOT_INFO_OFFSET
from isobuild.image import IsoImage
from isobuild.layout import BIOS_IMAGE
from isobuild.plan import plan_edits
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


def xorriso_replay(base, edits, workdir, output):
    commands = []
    for index, (iso_path, edit) in enumerate(sorted(edits.items())):
        local = workdir / f"{index:04d}"
        local.write_bytes(edit.data)
        os.chmod(local, edit.mode)
        commands += ["-map", str(local), iso_path]
    subprocess.run(["xorriso", "-indev", str(base), "-outdev", str(output), "-boot_image", "any",
                    "replay", *commands, "-commit"], check=True, capture_output=True)


def test_pycdlib_build_matches_xorriso_replay(replica_iso, appliance, tmp_path, monkeypatch):
    with IsoImage(replica_iso) as iso:
        layout = check_layout(iso)
        build_info = {"version": appliance.manifest["version"],
                      "built_at": appliance.manifest["built_at"],
                      "base_iso": appliance.manifest["base_iso"],
                      "vendored": payload.vendored_versions()}
        edits = plan_edits(iso, layout, TEST_OPTIONS, payload.collect(build_info))
    workdir = tmp_path / "files"
    workdir.mkdir()
    reference = tmp_path / "xorriso.iso"
    xorriso_replay(replica_iso, edits, workdir, reference)

    assert verify(reference)["ok"], verify(reference)
    assert verify(appliance.output)["ok"]
    ours, theirs = tree(appliance.output), tree(reference)
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs
    assert set(edits) <= set(ours)
