"""Quote and order numbers from the counter row: unique and without gaps under concurrency, a rolled-back
number handed out again, a new year starting at 0001 (on SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import date

from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.db import unit_of_work
from crm_inbox.sales.numbers import ORDER, QUOTE, next_number

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
