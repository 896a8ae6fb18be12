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

    def step(self, label: str) -> None:
        self._end_line()
        self._label = label
        if self.interactive:
            self.stream.write(f"{label}...")
            self.stream.flush()

    def bytes(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.interactive or (now - self._last < 0.2 and done < total):
            return
        self._last = now
        percent = 100 * done // total if total else 100
        self.stream.write(f"\r{self._label}: {done // MIB}/{total // MIB} MiB ({percent}%)\x1b[K")
        self.stream.flush()

    def summary(self, lines: list[str]) -> None:
        self._end_line()
        for line in lines:
            print(line, file=sys.stdout)

    def _end_line(self) -> None:
        if self.interactive and self._label:
            self.stream.write("\n")
            self._label = ""
