"""Progress on a terminal, and only the summary when output goes elsewhere."""

import sys
import time
from typing import TextIO

MIB = 1 << 20


class Progress:
    def __init__(self, stream: TextIO = sys.stderr, interactive: bool | None = None):
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self._label = ""
        self._last = 0.0
        self._transfer_start: tuple[float, int] | None = None

    def step(self, label: str) -> None:
        self._end_line()
        self._label = label
        self._transfer_start = None
        if self.interactive:
            self.stream.write(f"{label}...")
            self.stream.flush()

    def note(self, line: str) -> None:
        """A line worth keeping on the terminal (a resumed or restarted download)."""
        if self.interactive:
            self._end_line()
            self.stream.write(line + "\n")
            self.stream.flush()

    def bytes(self, done: int, total: int) -> None:
        if self._due(done, total):
            percent = 100 * done // total if total else 100
            self._show(f"{done // MIB}/{total // MIB} MiB ({percent}%)")

    def transfer(self, done: int, total: int) -> None:
        """Bytes, rate and time left of a download; the rate counts only this step's bytes,
        so a resumed download does not claim the resumed part as speed."""
        now = time.monotonic()
        if self._transfer_start is None:
            self._transfer_start = (now, done)
        if self._due(done, total):
            started, first = self._transfer_start
            self._show(transfer_line(done, total, (done - first) / max(now - started, 1e-3)))

    def summary(self, lines: list[str]) -> None:
        self._end_line()
        for line in lines:
            print(line, file=sys.stdout)

    def _due(self, done: int, total: int) -> bool:
        now = time.monotonic()
        if not self.interactive or (now - self._last < 0.2 and done < total):
            return False
        self._last = now
        return True

    def _show(self, figures: str) -> None:
        self.stream.write(f"\r{self._label}: {figures}\x1b[K")
        self.stream.flush()

    def _end_line(self) -> None:
        if self.interactive and self._label:
            self.stream.write("\n")
            self._label = ""


def transfer_line(done: int, total: int, rate: float) -> str:
    """`512/2700 MiB (18%), 11.3 MiB/s, 3m14s left`; the size unknown: bytes and rate only."""
    figures = f"{done // MIB}/{total // MIB} MiB ({100 * done // total}%)" if total else \
        f"{done // MIB} MiB"
    figures += f", {rate / MIB:.1f} MiB/s"
    if total and rate > 0:
        seconds = int((total - done) / rate)
        figures += f", {seconds // 60}m{seconds % 60:02d}s left"
    return figures
