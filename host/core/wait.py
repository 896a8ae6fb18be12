"""Waiting for something on the host or in the cluster, within a deadline."""

import time
from collections.abc import Callable


class TimedOut(Exception):
    """The deadline passed; carries what was still pending."""

    def __init__(self, pending: str, timeout: float):
        self.pending, self.timeout = pending, timeout
        super().__init__(f"within {timeout:.0f} s: {pending}")


def wait_until(pending: Callable[[], str | None], timeout: float, poll: float,
               on_change: Callable[[str], None] = lambda what: None,
               transient: tuple[type[Exception], ...] = ()) -> None:
    """Poll `pending` (None when done, else what it still waits for) every `poll` seconds
    until it is done; raise TimedOut after `timeout`. `on_change` hears each new answer;
    an exception of a `transient` type counts as still pending (an API server restarting)."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        try:
            waiting = pending()
        except transient as exc:
            waiting = str(exc)
        if waiting is None:
            return
        if waiting != last:
            on_change(waiting)
            last = waiting
        if time.monotonic() >= deadline:
            raise TimedOut(waiting, timeout)
        time.sleep(poll)
