"""The rendered autoinstall seed, byte for byte, against a reviewed golden file
(tests/isobuild/golden/user-data): users, the sudo rule, late-commands with their owners
and modes, packages and the network. A change to the seed changes that file in the same
commit, where a reviewer reads it like code.

Regenerate after a deliberate change, then review the diff:
    ALGA_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/isobuild/test_seed_golden.py
"""

import os
from pathlib import Path

from isobuild import seed
from isobuild.options import BuildOptions

GOLDEN = Path(__file__).parent / "golden" / "user-data"
OPTIONS = BuildOptions(hostname="alga-appliance", admin_user="algaadmin",
                       ssh_authorized_keys=("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGolden ops",),
                       timezone="Etc/UTC", installer_proxy="http://proxy.example:3128",
                       grub_timeout=5, serial_console=False)
UNITS = ["alga-appliance.service", "alga-appliance-setup.target"]


def test_the_rendered_seed_is_the_reviewed_golden_file():
    rendered = seed.render_user_data(seed.autoinstall(OPTIONS, UNITS, UNITS[:1]))
    if os.environ.get("ALGA_UPDATE_GOLDEN"):
        GOLDEN.write_bytes(rendered)
    assert rendered.decode() == GOLDEN.read_text()
