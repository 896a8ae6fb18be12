#!/usr/bin/env python3
"""Put the console captures the tests saved into the docs.

A doc marks each place with `<!-- console capture: NAME -->` on the line before a fenced
block; the block's text becomes the capture NAME.txt from the captures directory.

    python3 ci/embed_captures.py CAPTURES_DIR DOC...
"""

import re
import sys
from pathlib import Path

MARKED_BLOCK = re.compile(r"(<!-- console capture: ([\w-]+) -->\n```\n)(.*?)(^```)", re.M | re.S)


def embed(doc: str, captures: Path) -> str:
    def capture(match: re.Match) -> str:
        text = (captures / f"{match[2]}.txt").read_text()
        return match[1] + text + match[4]
    return MARKED_BLOCK.sub(capture, doc)


def marked(doc: str) -> list[str]:
    """The capture names a doc marks."""
    return [match[2] for match in MARKED_BLOCK.finditer(doc)]


def main(argv: list[str]) -> int:
    captures, docs = Path(argv[0]), [Path(name) for name in argv[1:]]
    for doc in docs:
        doc.write_text(embed(doc.read_text(), captures))
        print(f"{doc}: {', '.join(marked(doc.read_text())) or 'no captures marked'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
