"""A running operation's visible progress, the same for setup phases, app updates and
support bundles: its current step, kept in the state document that shows it (saved at each
step), and its log lines, kept for the failure record and appended to a log file."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from host.core import state


@dataclass
class Operation:
    record: dict  # the part of a state document that shows this operation
    step_field: str  # where in `record` the current step goes
    save: Callable[[], None]  # writes the state document holding `record`
    log_file: Path | None  # None: nothing is logged to disk (a check changes nothing)
    lines: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def step(self, text: str, **progress: object) -> None:
        """Say what the operation does now (and how far it got), visibly at once."""
        self.record[self.step_field] = text
        self.record.update(progress)
        self.log(f"→ {text}")
        self.save()

    def log(self, line: str) -> None:
        self.lines.append(line)
        if self.log_file is not None:
            append_log(self.log_file, line)

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 1)


def append_log(path: Path, line: str) -> None:
    """A timestamped line at the end of the log file `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fp:
        fp.write(f"{state.timestamp()} {line}\n")
