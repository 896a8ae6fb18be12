"""`isobuild build`: check the base, plan the edits, write, repair, verify, then publish.

The output appears only after the written image passed verification: the image is built
in a temporary file beside the output and renamed into place; on any failure the
temporary file is removed, so a failed build leaves nothing behind.
"""

import calendar
import datetime
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from host.core.state import fsync_directory, write_atomically
from host.core.validation import validate
from host.core.version import __version__
from isobuild import baseiso, checksums, gpg, grubcfg, hybrid, payload, remaster
from isobuild import disklayout as dl
from isobuild.errors import IsoBuildError
from isobuild.image import IsoImage, NotAnIso
from isobuild.options import BuildOptions
from isobuild.plan import plan_edits
from isobuild.progress import Progress
from isobuild.verify import verify

MANIFEST_SCHEMA = "isobuild-manifest.schema.json"
# Headroom beyond base + payload for the appended ESP, GPT and directory growth.
DISK_MARGIN = 64 << 20


@dataclass(frozen=True)
class BuildResult:
    output: Path
    manifest_path: Path
    sums_path: Path
    manifest: dict
    seconds: float


def manifest_path_for(output: Path) -> Path:
    return output.with_name(output.name + ".manifest.json")


def sums_path_for(output: Path) -> Path:
    """`<iso>.SHA256SUMS`: one line in Ubuntu's format, for `sha256sum -c` and a signature."""
    return output.with_name(output.name + ".SHA256SUMS")


def build(base: Path, output: Path, sha256sums: Path | None, options: BuildOptions,
          progress: Progress) -> BuildResult:
    started = time.monotonic()
    baseiso.check_paths(base, output)
    try:
        iso = IsoImage(base)
    except NotAnIso as exc:
        raise IsoBuildError(f"{base} is not an ISO 9660 image ({exc})",
                            baseiso.DOWNLOAD_HINT) from exc
    with iso, ThreadPoolExecutor(max_workers=1) as pool:
        layout = baseiso.check_layout(iso)
        if sha256sums is not None:
            checksums.expected_sha256(sha256sums, base.name)  # a missing entry fails now
        # The base is hashed while the image is written: both read it from the page
        # cache, on two cores. A mismatch still stops the build before anything is
        # published.
        base_hash = pool.submit(checksums.sha256_file, base)
        edits, epoch, build_info = plan_build(iso, layout, base.name, options)
        _check_free_space(base, output, sum(len(e.data) for e in edits.values()))
        partial = output.with_name(f".{output.name}.partial-{os.getpid()}")
        try:
            progress.step(f"Writing {output.name}")
            _write_and_verify(iso, layout, edits, partial, epoch, progress)
            base_sha256 = base_hash.result()
            if sha256sums is not None:
                checksums.check_sha256(base, base_sha256, sha256sums)
            progress.step(f"Hashing {output.name}")
            image_sha256 = checksums.sha256_file(partial, progress.bytes)
            os.replace(partial, output)
            fsync_directory(output.parent)
        finally:
            partial.unlink(missing_ok=True)
    manifest = {
        "version": __version__,
        "built_at": build_info["built_at"],
        "base_iso": {"name": base.name, "sha256": base_sha256},
        "output": {"name": output.name, "sha256": image_sha256, "size": output.stat().st_size},
        "kernel_arguments": grubcfg.kernel_arguments(options.serial_console),
        "options": options.as_document(),
        "files_added": sorted(edits),
    }
    validate(manifest, MANIFEST_SCHEMA, name="build manifest", source="isobuild build")
    manifest_path = manifest_path_for(output)
    write_atomically(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode(), 0o644)
    sums_path = sums_path_for(output)
    write_atomically(sums_path, f"{image_sha256} *{output.name}\n".encode(), 0o644)
    return BuildResult(output, manifest_path, sums_path, manifest, time.monotonic() - started)


def plan_build(iso: IsoImage, layout, base_name: str,
               options: BuildOptions) -> tuple[dict[str, remaster.FileEdit], int, dict]:
    """The edits, the build epoch and the build info for this base and these options."""
    epoch = _build_epoch(iso)
    build_info = {
        "version": __version__,
        "built_at": _iso8601(epoch),
        "base_iso": {"name": base_name, "volume_id": iso.volume_id},
        "vendored": payload.vendored_versions(),
    }
    files = payload.collect(build_info, options.release_source, options.admin_user,
                            gpg.host_release_trust(options.host_release_keys,
                                                   options.host_release_repository))
    return plan_edits(iso, layout, options, files), epoch, build_info


def _write_and_verify(iso: IsoImage, layout, edits, partial: Path, epoch: int,
                      progress: Progress) -> None:
    with open(partial, "w+b") as out:
        appended_from = layout.esp.first_lba * dl.SECTOR // dl.BLOCK
        bios_image = remaster.write(iso.fp, edits, out, epoch, appended_from, progress.bytes)
        try:
            hybrid.rebuild(out, layout, iso.fp, bios_image)
        except dl.LayoutError as exc:
            raise IsoBuildError(f"could not rebuild the hybrid boot structures: {exc}",
                                "this is an isobuild bug; report it with the base ISO's "
                                "`isobuild inspect` output") from exc
        out.flush()
        os.fsync(out.fileno())
    progress.step("Verifying the written image")
    report = verify(partial, md5_scope=set(edits))
    failed = [f"{c['id']}: {c['detail']}" for c in report["checks"] if not c["ok"]]
    if failed:
        raise IsoBuildError("the written image failed verification: " + "; ".join(failed),
                            "this is an isobuild bug; report it with this output")


def _check_free_space(base: Path, output: Path, payload_bytes: int) -> None:
    needed = base.stat().st_size + payload_bytes + DISK_MARGIN
    free = shutil.disk_usage(output.parent).free
    if free < needed:
        raise IsoBuildError(
            f"not enough free disk in {output.parent}: {free >> 20} MiB free, "
            f"{needed >> 20} MiB needed", "free up space or choose another --output directory")


def _build_epoch(iso: IsoImage) -> int:
    """SOURCE_DATE_EPOCH if set, else the base ISO's creation date: never the clock."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        try:
            return int(os.environ["SOURCE_DATE_EPOCH"])
        except ValueError as exc:
            raise IsoBuildError("SOURCE_DATE_EPOCH is not an integer",
                                "set it to seconds since 1970 or unset it") from exc
    date = iso.iso.pvd.volume_creation_date
    local = calendar.timegm((date.year, date.month, date.dayofmonth, date.hour, date.minute,
                             date.second))
    return local - date.gmtoffset * 15 * 60


def _iso8601(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
