"""Small analytical stores for report tests: rows by column name (everything else NULL or derived), written to a
DuckDB file without an operative database.

    rows = {"dim_staff": [staff(1, "Support")], "fact_ticket": [ticket(1, at(2026, 3, 2, 9), assignee_id=1)]}
    with store(tmp_path / "a.duckdb", rows) as con:
        report = service_report(con, filters, policy)

Times are naive UTC as in the store; the local date, hour and weekday are taken from them as they are (the
tests' local time is UTC).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from crm_inbox.analytics import schema
from crm_inbox.analytics.store import build_store, open_store

CONFIG: dict[str, Any] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


@functools.cache
def columns(table: str) -> tuple[str, ...]:
    """The table's columns in the schema's order."""
    con = duckdb.connect(":memory:", config=CONFIG)
    try:
        con.execute(schema.create_statements([table])[0])
        return tuple(r[0] for r in con.execute(f"DESCRIBE {table}").fetchall())
    finally:
        con.close()


def row(table: str, **values: Any) -> tuple[Any, ...]:
    """A row of ``table`` in column order from values by column name (the rest NULL); unknown names fail."""
    names = columns(table)
    unknown = set(values) - set(names)
    if unknown:
        raise KeyError(f"{table} has no column {sorted(unknown)}")
    return tuple(values.get(name) for name in names)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute)


def _minutes(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds() / 60


def staff(staff_id: int, team: str | None, *, active: bool = True, name: str | None = None) -> tuple[Any, ...]:
    return row("dim_staff", staff_id=staff_id, team=team, active=active, name=name)


def team_staff(first_id: int, team: str | None, people: int, **kw: Any) -> list[tuple[Any, ...]]:
    """``people`` staff rows of one team with ids from ``first_id``."""
    return [staff(first_id + i, team, **kw) for i in range(people)]


def company(company_id: int, category: str | None = None, **kw: Any) -> tuple[Any, ...]:
    return row("dim_company", company_id=company_id, category=category, name=f"Company {company_id}", **kw)


def contact(contact_id: int, company_id: int | None = None, category: str | None = None, **kw: Any) -> tuple[Any, ...]:
    return row("dim_contact", contact_id=contact_id, company_id=company_id, category=category,
               name=f"Contact {contact_id}", **kw)


def ticket(ticket_id: int, opened_at: datetime, *, closed_at: datetime | None = None,
           first_response_at: datetime | None = None, channel: str = "email", category: str | None = None,
           assignee_id: int | None = None, reopen_count: int = 0, state: str | None = None,
           priority: str = "normal", **kw: Any) -> tuple[Any, ...]:
    """A fact_ticket row; dates, minutes and the state follow from the times unless given."""
    return row(
        "fact_ticket", ticket_id=ticket_id, number=ticket_id, opened_at=opened_at, opened_date=opened_at.date(),
        closed_at=closed_at, closed_date=closed_at.date() if closed_at else None,
        state=state or ("closed" if closed_at else "open"), priority=priority, channel=channel,
        category=category, assignee_id=assignee_id, first_response_at=first_response_at,
        first_response_minutes=_minutes(opened_at, first_response_at),
        resolution_minutes=_minutes(opened_at, closed_at), reopen_count=reopen_count, **kw)


def call(call_id: int, started_at: datetime, *, direction: str = "in", answered: bool = True,
         staff_id: int | None = None, called_back_at: datetime | None = None, talk_seconds: int | None = None,
         contact_id: int | None = None, company_id: int | None = None, **kw: Any) -> tuple[Any, ...]:
    """A fact_call row; an unanswered inbound call is missed; local hour and weekday are the UTC ones."""
    missed = direction == "in" and not answered
    return row(
        "fact_call", call_id=call_id, started_at=started_at, started_date=started_at.date(),
        local_hour=started_at.hour, local_weekday=started_at.isoweekday(), direction=direction,
        answered=answered, missed=missed, ring_seconds=10, talk_seconds=talk_seconds if answered else 0,
        staff_id=staff_id, contact_id=contact_id, company_id=company_id, called_back_at=called_back_at,
        callback_minutes=_minutes(started_at, called_back_at), **kw)


def _dates(rows: Mapping[str, Sequence[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """dim_date rows for every day the facts' ``*_date`` columns use (as the refresh fills it)."""
    days: set[date] = set()
    for table, table_rows in rows.items():
        if not table.startswith("fact_"):
            continue
        idx = [i for i, name in enumerate(columns(table)) if name.endswith("_date")]
        days.update(r[i] for r in table_rows for i in idx if r[i] is not None)
    if not days:
        return []
    first, last = min(days), max(days)
    out = []
    d = first
    while d <= last:
        iso = d.isocalendar()
        out.append(row("dim_date", date_key=d, year=d.year, quarter=(d.month - 1) // 3 + 1, month=d.month,
                       iso_year=iso.year, iso_week=iso.week, weekday=iso.weekday, is_weekend=iso.weekday >= 6))
        d += timedelta(days=1)
    return out


def build(path: Path, rows: Mapping[str, Sequence[tuple[Any, ...]]]) -> Path:
    """A complete store file at ``path`` with ``rows`` per table (dim_date filled from the facts unless
    given)."""
    rows = dict(rows)
    rows.setdefault("dim_date", _dates(rows))
    build_store(path, rows)
    return path


@contextmanager
def store(path: Path, rows: Mapping[str, Sequence[tuple[Any, ...]]]) -> Iterator[duckdb.DuckDBPyConnection]:
    """Build the store and open it read-only, as reports see it."""
    build(path, rows)
    con = open_store(path)
    try:
        yield con
    finally:
        con.close()
