"""A QR code on a terminal: Unicode half blocks, two rows of modules to a character line,
so the setup link's code (version 4 at most, 33 modules) takes 37 columns and 19 lines of an
80x24 console.

Consoles draw light characters on a dark background, so the code is drawn inverted: the
light modules (and the quiet zone around them) are blocks, the dark ones spaces. Phone
cameras read light-on-dark codes as well as dark-on-light ones.
"""

import codecs

import qrcode
import qrcode.constants

# Two modules of quiet zone, not the standard's four: it keeps the code within 24 lines,
# and readers find it (the tests decode it with zbar, in the dark surroundings of a screen).
QUIET_ZONE = 2
# Upper module light, lower module light: the character that draws the pair.
HALF_BLOCKS = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}


def can_draw(encoding: str | None) -> bool:
    """Whether a terminal writing in `encoding` can show the half blocks: UTF-8 only (the
    Linux console and serial terminals in a C locale cannot)."""
    try:
        return encoding is not None and codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def terminal_lines(text: str) -> list[str]:
    """`text` as a QR code (error correction L, the smallest), one string a line."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_L, border=QUIET_ZONE)
    code.add_data(text)
    code.make(fit=True)
    light = [[not dark for dark in row] for row in code.get_matrix()]
    if len(light) % 2:
        light.append([False] * len(light[0]))  # the last line's lower half: the background
    return ["".join(HALF_BLOCKS[pair] for pair in zip(upper, lower, strict=True))
            for upper, lower in zip(light[::2], light[1::2], strict=True)]
