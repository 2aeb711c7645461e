"""Reading the analytical store: every way it can be unreadable is told apart, and a reader follows a swap."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from crm_inbox.analytics import schema
from crm_inbox.analytics import store as store_module
from crm_inbox.analytics.store import StoreReader, build_store, connect_file, open_store
from crm_inbox.errors import AnalyticsUnavailable

STAFF = [(1, "Support", True, None), (2, "Support", False, None)]
INVOICE = (7, "R-7", date(2026, 3, 4), "paid", Decimal("100.10"), Decimal("119.12"), Decimal("119.12"),
           None, None, None)


def test_a_built_store_reads_back_with_its_rows_and_money_as_decimal(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    build_store(path, {"dim_staff": STAFF, "fact_invoice": [INVOICE]})
    con = open_store(path)
    try:
        assert con.execute("SELECT count(*) FROM dim_staff WHERE active").fetchone() == (1,)
        assert con.execute("SELECT gross FROM fact_invoice").fetchone() == (Decimal("119.12"),)
        assert con.execute("SELECT count(*) FROM fact_interaction").fetchone() == (0,)
        with pytest.raises(duckdb.Error):  # read-only: a report can never change the store
            con.execute("DELETE FROM dim_staff")
    finally:
        con.close()
    info = StoreReader(path).info()
    assert info is not None and info.mode == "full" and info.schema_version == schema.SCHEMA_VERSION


def test_a_missing_store_is_missing(tmp_path: Path) -> None:
    with pytest.raises(AnalyticsUnavailable) as caught:
        open_store(tmp_path / "analytics.duckdb")
    assert caught.value.reason == "missing"
    assert StoreReader(tmp_path / "analytics.duckdb").info() is None


def test_garbage_bytes_are_a_corrupt_store(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    path.write_bytes(os.urandom(64 * 1024))
    with pytest.raises(AnalyticsUnavailable) as caught:
        open_store(path)
    assert caught.value.reason == "corrupt"
    reader = StoreReader(path)
    with pytest.raises(AnalyticsUnavailable) as caught, reader.cursor():
        pass
    assert caught.value.reason == "corrupt"


def test_a_store_of_another_schema_version_is_outdated(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    build_store(path, {"meta_refresh": [(datetime(2026, 1, 1), "full", "x", schema.SCHEMA_VERSION - 1, 1.0)]})
    with pytest.raises(AnalyticsUnavailable) as caught:
        open_store(path)
    assert caught.value.reason == "outdated"
    bare = tmp_path / "bare.duckdb"  # a DuckDB file, but not a store at all
    con = connect_file(bare)
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    with pytest.raises(AnalyticsUnavailable) as caught:
        open_store(bare)
    assert caught.value.reason == "outdated"


def test_a_store_another_process_writes_is_locked(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    build_store(path, {})
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('open', flush=True); sys.stdin.read()",
         str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "open"
        with pytest.raises(AnalyticsUnavailable) as caught:
            open_store(path)
        assert caught.value.reason == "locked"
    finally:
        writer.communicate("")
    open_store(path).close()  # the writer gone, the store reads again


def test_a_reader_follows_a_swap_while_an_open_cursor_keeps_its_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    build_store(path, {"dim_staff": STAFF})
    reader = StoreReader(path)
    with reader.cursor() as old:
        assert old.execute("SELECT count(*) FROM dim_staff").fetchone() == (2,)
        build_store(path, {"dim_staff": [*STAFF, (3, "Sales", True, None)]})  # swapped in by os.replace
        with reader.cursor() as new:
            assert new.execute("SELECT count(*) FROM dim_staff").fetchone() == (3,)
        assert old.execute("SELECT count(*) FROM dim_staff").fetchone() == (2,)
    with reader.cursor() as cur:
        assert cur.execute("SELECT count(*) FROM dim_staff").fetchone() == (3,)
    reader.close()


def test_readers_in_many_threads_share_the_store(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    build_store(path, {"dim_staff": STAFF})
    reader = StoreReader(path)
    counts: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(20):
                with reader.cursor() as cur:
                    row = cur.execute("SELECT count(*) FROM dim_staff").fetchone()
                    assert row is not None
                    counts.append(int(row[0]))
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and counts == [2] * 80


def test_a_reader_uses_one_thread_little_memory_and_no_disk(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    build_store(path, {})
    reader = StoreReader(path)
    with reader.cursor() as cur:
        threads, memory, spill = cur.execute("SELECT current_setting('threads'), current_setting('memory_limit'), "
                                             "current_setting('temp_directory')").fetchone() or (None, None, None)
    reader.close()
    assert threads == 1 and memory == "244.1 MiB" and spill == ""  # 256 MB; nothing spilled anywhere


def test_the_refresh_leaves_a_core_free_on_a_small_machine(tmp_path: Path) -> None:
    assert [store_module.refresh_threads(n) for n in (None, 1, 2, 4, 64)] == [1, 1, 1, 2, 2]
    con = connect_file(tmp_path / "new.duckdb")
    try:
        threads, memory = con.execute("SELECT current_setting('threads'), current_setting('memory_limit')"
                                      ).fetchone() or (None, None)
    finally:
        con.close()
    assert threads == store_module.refresh_threads(os.cpu_count()) and memory == "953.6 MiB"  # 1 GB


def _holds_deleted(path: Path) -> bool:
    fds = Path("/proc/self/fd")
    return any(os.readlink(fd).startswith(f"{path} (deleted)") for fd in fds.iterdir() if fd.is_symlink()
               and os.path.exists(fd))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_an_idle_reader_lets_go_of_a_swapped_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "WATCH_SECONDS", 0.02)
    path = tmp_path / "analytics.duckdb"
    build_store(path, {"dim_staff": STAFF})
    reader = StoreReader(path)
    with reader.cursor() as cur:
        cur.execute("SELECT count(*) FROM dim_staff").fetchone()
    build_store(path, {})  # swapped: the old file is unlinked, but open
    deadline = time.monotonic() + 5
    while _holds_deleted(path) and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the watcher's effect, bounded
    assert not _holds_deleted(path)
    with reader.cursor() as cur:  # and the reader reads the new file
        assert cur.execute("SELECT count(*) FROM dim_staff").fetchone() == (0,)
    reader.close()
