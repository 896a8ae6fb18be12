#!/usr/bin/env python3
"""Make isobuild's edits with the reference tool, `xorriso -boot_image any replay`.

The differential test and the benchmark both need exactly the files `isobuild build`
writes, mapped into the base image by xorriso instead of pycdlib:

    python3 ci/xorriso_replay.py prepare BASE.iso DIR   # edit files + DIR/map.args
    python3 ci/xorriso_replay.py replay BASE.iso OUT.iso
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from isobuild.baseiso import check_layout
from isobuild.build import plan_build
from isobuild.image import IsoImage
from isobuild.options import BuildOptions


def prepare(base: Path, directory: Path, options: BuildOptions) -> list[str]:
    """Write every edit of a build as a file in `directory`; return xorriso's -map args."""
    with IsoImage(base) as iso:
        edits, _, _ = plan_build(iso, check_layout(iso), base.name, options)
    directory.mkdir(parents=True, exist_ok=True)
    args = []
    for index, (iso_path, edit) in enumerate(sorted(edits.items())):
        local = directory / f"{index:04d}"
        local.write_bytes(edit.data)
        os.chmod(local, edit.mode)  # xorriso takes Rock Ridge permissions from the file
        args += ["-map", str(local), iso_path]
    (directory / "map.args").write_text("\n".join(args) + "\n")
    return args


def replay_command(base: Path, output: Path, map_args: list[str]) -> list[str]:
    return ["xorriso", "-indev", str(base), "-outdev", str(output), "-boot_image", "any",
            "replay", *map_args, "-commit"]


def replay(base: Path, output: Path, workdir: Path, options: BuildOptions) -> None:
    args = prepare(base, workdir, options)
    subprocess.run(replay_command(base, output, args), check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prepare_cmd = sub.add_parser("prepare")
    prepare_cmd.add_argument("base", type=Path)
    prepare_cmd.add_argument("directory", type=Path)
    replay_cmd = sub.add_parser("replay")
    replay_cmd.add_argument("base", type=Path)
    replay_cmd.add_argument("output", type=Path)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.base, args.directory, BuildOptions())
    else:
        replay(args.base, args.output, args.output.with_suffix(".edits"), BuildOptions())
    return 0


if __name__ == "__main__":
    sys.exit(main())
