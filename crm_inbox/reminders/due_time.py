"""When is a reminder due? "morgen 9 Uhr", "in 3 days", "Freitag", an ISO time: parsed in the office's
time zone with dateparser (German and English), returned in UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateparser.date import DateDataParser

from crm_inbox.errors import DueOutOfRange
from crm_inbox.time_range import in_range

# dateparser reads "9 Uhr" and "um 9" as no time at all, and "1.12." as 01:12: say them its way first.
_FULL_HOUR_UHR = re.compile(r"(?<![:\d])(\d{1,2})\s*uhr\b", re.I)
_CLOCK_UHR = re.compile(r"(\d{1,2}:\d{2})\s*uhr\b", re.I)
_UM_HOUR = re.compile(r"\b(um|at)\s+(\d{1,2})\b(?![:.\d]|\s*(am|pm)\b)", re.I)
_DAY_MONTH = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(?!\d)")
_BIG_NUMBER = re.compile(r"\d{4,}")


def parse_due(text: str, tz_name: str, now: datetime | None = None, default_hour: int = 9) -> datetime | None:
    """A due time from staff input, or None when it says no time the CRM can keep (see ``read_due``)."""
    try:
        return read_due(text, tz_name, now, default_hour)
    except DueOutOfRange:
        return None


def read_due(text: str, tz_name: str, now: datetime | None = None, default_hour: int = 9) -> datetime | None:
    """``parse_due``, but a time outside ``time_range`` raises ``DueOutOfRange`` so staff are told why."""
    text = " ".join((text or "").split())
    now = now or datetime.now(UTC)
    try:
        due = _parse(text, tz_name, now, default_hour)
    except (OverflowError, ValueError):  # an ISO time whose offset leaves the calendar in UTC
        raise DueOutOfRange() from None
    if due is None:
        # dateparser gives up on times past year 9999; the same words with a smaller number still parse
        if _BIG_NUMBER.search(text) and _parse(_BIG_NUMBER.sub("1000", text), tz_name, now, default_hour):
            raise DueOutOfRange()
        return None
    if not in_range(due):
        raise DueOutOfRange()
    return due


def _parse(text: str, tz_name: str, now: datetime, default_hour: int) -> datetime | None:
    """A due time from staff input, or None when it says no time. A day without a time of day (``Freitag``,
    ``in 3 Tagen``, ``next week``) means ``default_hour`` o'clock that day; a time already past today
    means that time on the next matching day (dateparser prefers the future)."""
    if not text or len(text) > 100:
        return None
    tz = ZoneInfo(tz_name)
    now = now.astimezone(tz)
    try:
        iso = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        return (iso if iso.tzinfo else iso.replace(tzinfo=tz)).astimezone(UTC)
    bare_day = _DAY_MONTH.search(text) is not None
    text = _CLOCK_UHR.sub(r"\1", text)
    text = _FULL_HOUR_UHR.sub(r"\1:00", text)
    text = _UM_HOUR.sub(r"\1 \2:00", text)
    text = _DAY_MONTH.sub(lambda m: f"{m[1]}.{m[2]}.{now.year}", text)
    parser = DateDataParser(languages=["de", "en"], settings={
        "DATE_ORDER": "DMY", "PREFER_DATES_FROM": "future", "RELATIVE_BASE": now.replace(tzinfo=None),
        "TIMEZONE": tz_name, "RETURN_AS_TIMEZONE_AWARE": True, "RETURN_TIME_AS_PERIOD": True})
    data = parser.get_date_data(text)
    if data.date_obj is None:
        return None
    when = data.date_obj.astimezone(tz)
    if data.period != "time":
        when = when.replace(hour=default_hour, minute=0, second=0, microsecond=0)
    if bare_day and when < now - timedelta(days=1):
        when = when.replace(year=when.year + 1)  # "1.3." said in December: next March
    return when.astimezone(UTC)
