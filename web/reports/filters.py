"""The report filters as the pages and the API take them (``?from=&to=&team=&category=``): parsed into the
report values' ``Filters``, with defaults a reader expects, and refused with a clear message when they make no
sense. Pure: ``today`` comes from the caller."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

from crm_inbox.analytics.model import Filters
from crm_inbox.errors import ValidationError
from web.i18n import N_

CATEGORIES = ("A", "B", "C", "none")
MAX_DAYS = 5 * 365 + 2  # five years, leap days included
MAX_TEAM = 100
# Years a business's figures can have: beyond them date arithmetic in the reports (a month on, 90 days back)
# would leave the calendar, and nobody means year 1 or 9999.
YEARS = (1900, 2999)
# Service and phone look at recent weeks; sales and customers at the year (the forecast reaches ahead).
RECENT_DAYS = {"service": 90, "phone": 90}


def default_period(report: str, today: date) -> tuple[date, date]:
    """(first day, last day), both inclusive: the last 90 days up to today, or the current calendar year."""
    if report in RECENT_DAYS:
        return today - timedelta(days=RECENT_DAYS[report] - 1), today
    return date(today.year, 1, 1), date(today.year, 12, 31)


def _day(args: Mapping[str, str], name: str, default: date) -> date:
    raw = (args.get(name) or "").strip()
    if not raw:
        return default
    try:
        if len(raw) != 10:  # fromisoformat also reads 20260301 and week dates: the form sends YYYY-MM-DD
            raise ValueError(raw)
        day = date.fromisoformat(raw)
    except ValueError:
        raise ValidationError(name, N_("is not a date (YYYY-MM-DD)")) from None
    if not YEARS[0] <= day.year <= YEARS[1]:
        raise ValidationError(name, N_("must lie between the years 1900 and 2999"))
    return day


def parse_filters(report: str, args: Mapping[str, str], today: date) -> Filters:
    """The filters from the query string; empty fields take the defaults. Raises ValidationError (the field
    and an English message the pages translate)."""
    first_default, last_default = default_period(report, today)
    first = _day(args, "from", first_default)
    last = _day(args, "to", last_default)
    if last < first:
        raise ValidationError("to", N_("the period ends before it starts"))
    if (last - first).days >= MAX_DAYS:
        raise ValidationError("to", N_("the period may be at most five years"))
    team = (args.get("team") or "").strip() or None
    if team is not None and len(team) > MAX_TEAM:
        raise ValidationError("team", N_("is too long"))
    category = (args.get("category") or "").strip() or None
    if category is not None and category not in CATEGORIES:
        raise ValidationError("category", N_("is not a category (A, B, C or none)"))
    return Filters(start=first, end=last + timedelta(days=1), team=team, category=category)


def last_day(filters: Filters) -> date:
    """The period's last day as people write it (Filters.end is the day after)."""
    return filters.end - timedelta(days=1)


def query_args(filters: Filters) -> dict[str, str]:
    """The filters as query arguments again (for the chart, CSV and API links of the same figures)."""
    args = {"from": filters.start.isoformat(), "to": last_day(filters).isoformat()}
    if filters.team:
        args["team"] = filters.team
    if filters.category:
        args["category"] = filters.category
    return args
