"""The Parquet export: every table, facts by month in Hive-style folders, read back by DuckDB with the same
counts and money."""

from __future__ import annotations

import os
import stat
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from crm_inbox.analytics import schema
from crm_inbox.analytics.export import ExportRefused, export_parquet
from crm_inbox.analytics.store import build_store, connect_memory
from crm_inbox.cli import main
from crm_inbox.errors import AnalyticsUnavailable


def _invoice(n: int, issued: date, gross: str) -> tuple[object, ...]:
    return (n, f"R-{n}", issued, "paid", Decimal(gross), Decimal(gross), Decimal(gross), None, n, None)


def _send(n: int, sent: datetime | None) -> tuple[object, ...]:
    return (n, 1, "Frühjahr", "email", "released" if sent else "queued", None, sent,
            sent.date() if sent else None, None, None, None, None, n)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "analytics.duckdb"
    build_store(path, {
        "dim_staff": [(1, "Support", True, None)],
        "fact_invoice": [_invoice(1, date(2026, 1, 31), "119.12"), _invoice(2, date(2026, 2, 1), "0.01"),
                         _invoice(3, date(2026, 2, 28), "1000000.99")],
        "fact_campaign_send": [_send(1, datetime(2026, 3, 1, 9, 0)), _send(2, None)],  # one not sent yet
    })
    return path


def test_the_export_reads_back_with_the_same_counts_and_money(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    written = export_parquet(store, out)
    assert set(written) == set(schema.EXPORT_PARTITIONS)
    assert written["fact_invoice"] == 3 and written["dim_staff"] == 1
    assert sorted(p.name for p in (out / "fact_invoice").iterdir()) == ["month=2026-01", "month=2026-02"]
    con = connect_memory()
    try:
        invoices = f"read_parquet('{out}/fact_invoice/*/*.parquet', hive_partitioning=true)"
        assert con.execute(f"SELECT count(*), sum(gross) FROM {invoices}").fetchone() == (3, Decimal("1000120.12"))
        assert con.execute(f"SELECT month, count(*) FROM {invoices} GROUP BY month ORDER BY month").fetchall() == [
            ("2026-01", 1), ("2026-02", 2)]
        sends = f"read_parquet('{out}/fact_campaign_send/*/*.parquet', hive_partitioning=true)"
        assert con.execute(f"SELECT count(*), count(sent_at) FROM {sends}").fetchone() == (2, 1)
        assert con.execute(f"SELECT count(*) FROM read_parquet('{out}/dim_staff.parquet')").fetchone() == (1,)
    finally:
        con.close()
    # Again into the same folder: replaced, not doubled.
    export_parquet(store, out)
    con = connect_memory()
    try:
        assert con.execute(f"SELECT count(*) FROM read_parquet('{out}/fact_invoice/*/*.parquet')").fetchone() == (3,)
    finally:
        con.close()


def test_the_export_of_a_missing_store_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(AnalyticsUnavailable):
        export_parquet(tmp_path / "none.duckdb", tmp_path / "out")
    config = tmp_path / "crm.toml"
    config.write_text(f'[service]\ninstance_dir = "{tmp_path}"\n[database]\nurl = "sqlite:///{tmp_path}/crm.db"\n')
    assert main(["--config", str(config), "analytics", "export", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "missing" in captured.err and "Traceback" not in captured.err


def test_the_command_exports_the_store(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "crm.toml"
    config.write_text(f'[service]\ninstance_dir = "{tmp_path}"\n[database]\nurl = "sqlite:///{tmp_path}/crm.db"\n'
                      f'[analytics]\npath = "{store}"\n')
    assert main(["--config", str(config), "analytics", "export", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.startswith(f"analytics: {len(schema.EXPORT_PARTITIONS)} tables, 6 rows")
    assert (tmp_path / "out" / "dim_date.parquet").is_file()


def test_export_files_are_the_owners_only_whatever_the_umask(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    old = os.umask(0o022)
    try:
        export_parquet(store, out)
    finally:
        os.umask(old)
    modes = {p.relative_to(out): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert modes[Path(".")] == 0o700
    assert {m for p, m in modes.items() if (out / p).is_dir()} == {0o700}
    assert {m for p, m in modes.items() if (out / p).is_file()} == {0o600}
    assert (out / "fact_invoice" / "month=2026-01").is_dir()  # the files really were checked


def test_the_export_refuses_a_folder_of_the_users_own(store: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    (home / "fact_invoice").mkdir(parents=True)
    (home / "fact_invoice" / "my-notes.txt").write_text("mine")
    with pytest.raises(ExportRefused):
        export_parquet(store, home)
    assert (home / "fact_invoice" / "my-notes.txt").read_text() == "mine"
    config = tmp_path / "crm.toml"
    config.write_text(f'[service]\ninstance_dir = "{tmp_path}"\n[database]\nurl = "sqlite:///{tmp_path}/crm.db"\n'
                      f'[analytics]\npath = "{store}"\n')
    assert main(["--config", str(config), "analytics", "export", str(home)]) == 1
    err = capsys.readouterr().err
    assert "not empty" in err and len(err.strip().splitlines()) == 1
    assert (home / "fact_invoice" / "my-notes.txt").exists()


def test_interaction_links_are_partitioned_by_their_local_month(tmp_path: Path) -> None:
    # 28 Feb 23:30 UTC is 1 March in Berlin: the interaction and its link both in March.
    at = datetime(2026, 2, 28, 23, 30)
    path = tmp_path / "analytics.duckdb"
    build_store(path, {
        "fact_interaction": [(1, at, date(2026, 3, 1), "email", "in", "email", None, None, None)],
        "fact_interaction_contact": [(1, 5, at, "from", date(2026, 3, 1))],
    })
    out = tmp_path / "export"
    export_parquet(path, out)
    assert [p.name for p in (out / "fact_interaction").iterdir()] == ["month=2026-03"]
    assert [p.name for p in (out / "fact_interaction_contact").iterdir()] == ["month=2026-03"]
