"""Time between two recorded moments, and durations in words: the one way the progress
views, the console and the request-pickup notice say how long something took or waited.

Recorded times come from clocks that can jump (NTP correcting a VM's clock, a host moved
between hypervisors), so a span that runs backwards is unknown, never negative.
"""

import datetime

MINUTE, HOUR, DAY = 60, 3600, 86400


def seconds_between(start: datetime.datetime | None,
                    end: datetime.datetime | None) -> int | None:
    """Whole seconds from `start` to `end`; None when either is unknown or the clock ran
    backwards between them (a finish recorded before its start)."""
    if start is None or end is None or end < start:
        return None
    return int((end - start).total_seconds())


def words(seconds: int | float) -> str:
    """45 s, 3 min 20 s, 12 min, 1 h 05 min, 2 d 3 h: precise while short, rounded down
    as it grows (nobody needs the seconds of an hour)."""
    whole = max(0, int(seconds))
    if whole < MINUTE:
        return f"{whole} s"
    if whole < 10 * MINUTE:
        minutes, rest = divmod(whole, MINUTE)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    if whole < HOUR:
        return f"{whole // MINUTE} min"
    if whole < DAY:
        hours, rest = divmod(whole, HOUR)
        return f"{hours} h {rest // MINUTE:02d} min"
    days, rest = divmod(whole, DAY)
    return f"{days} d {rest // HOUR} h"
