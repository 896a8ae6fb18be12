"""The docs as the doc tests read them (plain helpers): the Markdown files, their shell
blocks, the docs whose shell blocks the VM tier runs, and the console captures the admin
guide embeds."""

import os
import re
import textwrap
from pathlib import Path

from support.base import ROOT

DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^( *)```(?:sh|bash)\n(.*?)^\1```", re.M | re.S)  # also in a list item
CAPTURES = Path(os.environ.get("CONSOLE_CAPTURE_DIR", ROOT / "test-artifacts" / "console"))
CAPTURE_NAMES = ("banner", "tui-dns", "plain-custom-dns", "tui-menu", "plain-status",
                 "tui-network-keep")
SHELL_DOCS = {  # doc -> what its blocks, run in order, must have printed
    "docs/support/state-files.md": ['"status": "succeeded"', "installing: "],
    "docs/support/support-bundle.md": ["/var/lib/alga-appliance/support/alga-appliance-support-",
                                       "/tmp/alga-appliance-support-",
                                       "# Alga appliance support bundle", '"collectors": ['],
    "docs/maintenance.md": ["app: stable ", '"k3s_version": "v'],
    "docs/admin-guide.md": [],  # the Flux and release phases against a kubeconfig: exit 0
}


def shell_blocks(doc: Path) -> list[str]:
    """The doc's shell blocks, as written (without a list item's indent)."""
    return blocks_in(doc.read_text())


def blocks_in(text: str) -> list[str]:
    return [textwrap.dedent(block) for _, block in FENCE.findall(text)]
