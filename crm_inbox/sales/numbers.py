"""Quote and order numbers (``AN-2026-0001``, ``AB-2026-0001``) from a counter row per series and year.

The counter is incremented with one ``UPDATE … RETURNING`` in the transaction that uses the number: the row
lock makes a concurrent allocation wait for the first transaction's commit (never fail, never read a stale
value), a rollback gives the number back with everything else, so numbers are unique, never reused (a deleted
quote's number stays spent) and have no gaps. ``MAX()+1`` would hand out duplicates under load and reuse the
numbers of deleted rows.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import update
from sqlalchemy.orm import Session

from crm_inbox.db import insert_ignoring_conflicts
from crm_inbox.models import NumberCounter

QUOTE = "quote"
ORDER = "order"


def next_number(session: Session, series: str, fmt: str, day: date) -> str:
    """The next number of ``series`` in ``day``'s year, formatted with ``fmt`` (``{year}``, ``{seq}``)."""
    # The row of a new year is created once; a concurrent creator's insert is a no-op, then both UPDATE.
    insert_ignoring_conflicts(session, NumberCounter.__table__, {"series": series, "year": day.year, "last": 0},
                              ["series", "year"])
    seq = session.execute(
        update(NumberCounter)
        .where(NumberCounter.series == series, NumberCounter.year == day.year)
        .values(last=NumberCounter.last + 1)
        .returning(NumberCounter.last)
    ).scalar_one()
    return fmt.format(year=day.year, seq=seq)
