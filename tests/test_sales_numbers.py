"""Quote and order numbers from the counter row: unique and without gaps under concurrency, a rolled-back
number handed out again, a new year starting at 0001 (on SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.models import Quote
from crm_inbox.sales import quotes
from crm_inbox.sales.inputs import QuoteFields
from crm_inbox.sales.numbers import ORDER, QUOTE, next_number
from crm_inbox.sales.records import today
from tests.sales_data import lines, sales_settings, world

FMT = "AN-{year}-{seq:04d}"
DAY = date(2026, 3, 2)


def _allocate_concurrently(factory: sessionmaker[Session], threads: int, per_thread: int) -> list[str]:
    """``threads`` workers, each with its own sessions, allocating ``per_thread`` numbers in one transaction
    each (every fourth rolled back); they all start together so that the allocations overlap. Returns the
    committed numbers."""
    start = threading.Barrier(threads)
    numbers: list[str] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def work() -> None:
        try:
            start.wait()
            for round_ in range(per_thread):
                with factory() as session:
                    number = next_number(session, QUOTE, FMT, DAY)
                    if round_ % 4 == 3:  # a failed transaction: its number must go to the next one
                        session.rollback()
                        continue
                    session.commit()
                with guard:
                    numbers.append(number)
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    return numbers


def test_concurrent_allocations_give_distinct_numbers_without_gaps(factory: sessionmaker[Session]) -> None:
    postgres = factory.kw["bind"].dialect.name == "postgresql"
    # SQLite serialises writers (busy timeout): fewer threads keep the test fast, the point is the same.
    threads, per_thread = (8, 33) if postgres else (4, 12)
    numbers = _allocate_concurrently(factory, threads, per_thread)
    total = threads * (per_thread - per_thread // 4)
    assert total == (200 if postgres else 36)
    assert sorted(numbers) == [f"AN-2026-{seq:04d}" for seq in range(1, total + 1)]


def test_a_rolled_back_number_is_handed_out_again(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        assert next_number(session, QUOTE, FMT, DAY) == "AN-2026-0001"
    with factory() as session:
        assert next_number(session, QUOTE, FMT, DAY) == "AN-2026-0002"
        session.rollback()  # the quote's transaction failed: its number was never used
    with unit_of_work(factory) as session:
        assert next_number(session, QUOTE, FMT, DAY) == "AN-2026-0002"


def test_series_and_years_count_separately(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        assert next_number(session, QUOTE, FMT, DAY) == "AN-2026-0001"
        assert next_number(session, QUOTE, FMT, date(2026, 12, 31)) == "AN-2026-0002"
        assert next_number(session, ORDER, "AB-{year}-{seq:04d}", DAY) == "AB-2026-0001"
        assert next_number(session, QUOTE, FMT, date(2027, 1, 1)) == "AN-2027-0001"
        assert next_number(session, QUOTE, FMT, DAY) == "AN-2026-0003"  # the old year goes on where it was


def test_quotes_finalised_at_once_get_distinct_numbers(settings: Settings, factory: sessionmaker[Session]) -> None:
    """The real path: staff finalising drafts at the same moment (PDF rendering inside the counter's lock)."""
    sales = sales_settings(settings)
    postgres = factory.kw["bind"].dialect.name == "postgresql"
    threads, per_thread = (6, 3) if postgres else (3, 2)
    with unit_of_work(factory) as session:
        w = world(session, sales)
        drafts = [quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id, lines=lines(w)),
                                      by=w.staff.id).id for _ in range(threads * per_thread)]
        staff_id = w.staff.id
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(ids: list[int]) -> None:
        try:
            start.wait()
            for quote_id in ids:
                with unit_of_work(factory) as session:
                    quotes.finalise_quote(session, sales, session.get_one(Quote, quote_id), by=staff_id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(drafts[i::threads],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    with factory() as session:
        numbers = sorted(session.scalars(select(Quote.number)))
    assert numbers == [f"AN-{today(sales).year}-{seq:04d}" for seq in range(1, threads * per_thread + 1)]
