"""Render event times in the forms producers really send, fast.

Every event time starts as UTC epoch milliseconds. ``render`` turns it into one of the accepted
``event_timestamp`` forms and returns the instant the *rendered* value denotes (forms without a
fraction truncate to the second), so the ground truth always follows what was written.
"""

from __future__ import annotations

import datetime as dt

DAY_MS = 86_400_000

#: ``2026-01-31T12:00:00Z``
Z = 0
#: ``2026-01-31T12:00:00.123Z``
Z_MS = 1
#: ``2026-01-31T17:30:00+05:30`` (the producer's local time and offset)
OFFSET = 2
#: ``2026-01-31T04:00:00.123-08:00``
OFFSET_MS = 3
#: ``2026-01-31T12:00:00.123000+00:00`` (Python ``isoformat()`` of an aware UTC datetime)
UTC_US = 4
#: integer epoch milliseconds
EPOCH_MS = 5

_EPOCH_DATE = dt.date(1970, 1, 1)
_DATES: dict[int, str] = {}


def date_str(day: int) -> str:
    """``YYYY-MM-DD`` of a day number (days since 1970-01-01)."""
    s = _DATES.get(day)
    if s is None:
        s = _DATES[day] = (_EPOCH_DATE + dt.timedelta(days=day)).isoformat()
    return s


def offset_suffix(minutes: int) -> str:
    """``+05:30`` / ``-08:00`` for an offset east of UTC in minutes."""
    sign = "-" if minutes < 0 else "+"
    h, m = divmod(abs(minutes), 60)
    return f"{sign}{h:02d}:{m:02d}"


def render(ms: int, style: int, offset_min: int = 0, suffix: str = "+00:00") -> tuple[int, int | str]:
    """(instant in epoch ms that the value denotes, ``event_timestamp`` value)."""
    if style == EPOCH_MS:
        return ms, ms
    if style == Z or style == OFFSET:
        ms -= ms % 1000
    if style == OFFSET or style == OFFSET_MS:
        local = ms + offset_min * 60_000
    else:
        local = ms
        suffix = "Z" if style != UTC_US else "+00:00"
    day, rem = divmod(local, DAY_MS)
    d = _DATES.get(day) or date_str(day)
    sec, milli = divmod(rem, 1000)
    h, sec = divmod(sec, 3600)
    m, s = divmod(sec, 60)
    if style == Z or style == OFFSET:
        return ms, f"{d}T{h:02d}:{m:02d}:{s:02d}{suffix}"
    if style == UTC_US:
        return ms, f"{d}T{h:02d}:{m:02d}:{s:02d}.{milli:03d}000{suffix}"
    return ms, f"{d}T{h:02d}:{m:02d}:{s:02d}.{milli:03d}{suffix}"


def rfc3339_utc(ms: int) -> str:
    """``2026-01-31T12:00:00.123Z``: how typed formats carry an epoch-ms time as text."""
    return render(ms, Z_MS)[1]
