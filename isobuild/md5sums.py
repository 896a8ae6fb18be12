"""Ubuntu's /md5sum.txt: casper-md5check verifies every listed file at boot."""

import hashlib

# Writing an ISO patches these two, so Ubuntu leaves them out of md5sum.txt.
EXCLUDED = ("/boot.catalog", "/boot/grub/i386-pc/eltorito.img")


def parse(text: str) -> dict[str, str]:
    """iso path -> md5, from lines `<md5>  ./path`."""
    entries = {}
    for line in text.splitlines():
        digest, sep, name = line.partition("  ")
        if sep and name.startswith("./"):
            entries[name[1:]] = digest
    return entries


def render(entries: dict[str, str]) -> str:
    return "".join(f"{digest}  .{path}\n" for path, digest in entries.items())


def updated(text: str, files: dict[str, bytes]) -> str:
    """md5sum.txt with entries for `files` (iso path -> data) replaced or appended."""
    entries = parse(text)
    for path in sorted(files):
        if path not in EXCLUDED and path != "/md5sum.txt":
            entries[path] = hashlib.md5(files[path]).hexdigest()
    return render(entries)
