"""Every change a build makes to the base ISO, decided before anything is written.

The same plan drives the pycdlib writer and, in the tests, xorriso's replay, so the two
can be compared file for file.
"""

from isobuild import grubcfg, md5sums, payload, seed
from isobuild.image import IsoImage
from isobuild.layout import Layout
from isobuild.options import BuildOptions
from isobuild.remaster import FileEdit

SEED_DIR = "/nocloud"
USER_DATA = f"{SEED_DIR}/user-data"
META_DATA = f"{SEED_DIR}/meta-data"
MD5SUM = "/md5sum.txt"
# loopback.cfg is only sourced by another GRUB's menu: no timeout, no installed-disk entry.
MAIN_MENU = "/boot/grub/grub.cfg"


def plan_edits(iso: IsoImage, layout: Layout, options: BuildOptions,
               payload_files: list[payload.PayloadFile]) -> dict[str, FileEdit]:
    edits = {f"/{payload.PAYLOAD_DIR}/{f.path}": FileEdit(f.data, f.mode) for f in payload_files}
    document = seed.autoinstall(options, payload.units(payload_files),
                                payload.enabled_units(payload_files))
    edits[USER_DATA] = FileEdit(seed.render_user_data(document), 0o644)
    edits[META_DATA] = FileEdit(seed.META_DATA, 0o644)
    for path, text in layout.grub_configs.items():
        timeout = options.grub_timeout if path == MAIN_MENU else None
        patched = grubcfg.patch_config(text, timeout=timeout, serial=options.serial_console)
        if path == MAIN_MENU:
            patched = grubcfg.guard_reinstall(patched)
        edits[path] = FileEdit(patched.encode(), _mode(iso, path))
    md5_text = (iso.read(MD5SUM) or b"").decode("utf-8", "replace")
    new_md5 = md5sums.updated(md5_text, {p: e.data for p, e in edits.items()})
    edits[MD5SUM] = FileEdit(new_md5.encode(), _mode(iso, MD5SUM))
    return edits


def _mode(iso: IsoImage, path: str) -> int:
    record = iso.record(path)
    if record is None or record.rock_ridge is None:
        return 0o644
    return record.rock_ridge.get_file_mode() & 0o7777
