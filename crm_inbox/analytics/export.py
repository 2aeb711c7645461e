"""``crm-inbox analytics export DIR``: the store's facts and dimensions as Parquet files, for whatever engine a
company grows into (DuckDB, Spark, Trino, a cloud warehouse).

Facts are partitioned by month in Hive style (``DIR/fact_call/month=2026-03/data_0.parquet``), dimensions are
one file each (``DIR/dim_contact.parquet``). Rows whose partition date is empty (a campaign send not sent yet)
go to ``month=__HIVE_DEFAULT_PARTITION__``, which Hive, Spark and Trino read as NULL. DuckDB writes the files
itself (COPY … FORMAT parquet), reading the store read-only.

The files are personal data (names, customer numbers, revenue): the folder is made 0700 and every file 0600,
whatever the umask. The export only writes into an empty (or new) folder or one an earlier export made (it
leaves a marker file there): replacing a table's folder must never remove a folder of the user's own.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from crm_inbox.analytics import schema
from crm_inbox.analytics.store import open_store

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
# Written into the folder by every export: an earlier export's folder may be written into again.
MARKER = ".crm-inbox-analytics-export"


class ExportRefused(Exception):
    """The folder holds other things than an earlier export; the message is fit to show."""


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def export_parquet(store_path: Path, out_dir: Path) -> dict[str, int]:
    """Write every table of schema.EXPORT_PARTITIONS under ``out_dir`` (a table's earlier export there is
    replaced); the rows written per table. Raises AnalyticsUnavailable when the store cannot be read."""
    con = open_store(store_path)
    try:
        _prepare(out_dir)
        written: dict[str, int] = {}
        for table, column in schema.EXPORT_PARTITIONS.items():
            row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            written[table] = int(row[0]) if row else 0
            if column is None:
                con.execute(f"COPY {table} TO {_literal(out_dir / f'{table}.parquet')} (FORMAT parquet)")
                continue
            target = out_dir / table
            if target.exists():
                shutil.rmtree(target)  # no stale months of an earlier export
            target.mkdir()
            if not written[table]:
                continue  # an empty table: an empty folder (DuckDB writes no partition files for no rows)
            con.execute(
                f"COPY (SELECT *, coalesce(strftime({column}, '%Y-%m'), '{NULL_PARTITION}') AS month FROM {table}) "
                f"TO {_literal(target)} (FORMAT parquet, PARTITION_BY (month), OVERWRITE_OR_IGNORE)")
        _make_private(out_dir)
        return written
    finally:
        con.close()


def _prepare(out_dir: Path) -> None:
    """The folder made (0700) and marked as an export's, or ExportRefused when it holds anything else."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportRefused(f"{out_dir} is not a folder")
    if out_dir.is_dir() and not (out_dir / MARKER).is_file() and any(out_dir.iterdir()):
        raise ExportRefused(f"{out_dir} is not empty and holds no earlier export: choose an empty or new folder")
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(out_dir, 0o700)  # before any file is written: nobody else can reach into it
    (out_dir / MARKER).write_text("crm-inbox analytics export: this folder is replaced by the next export\n")


def _make_private(out_dir: Path) -> None:
    for folder, dirs, files in os.walk(out_dir):
        for name in dirs:
            os.chmod(Path(folder) / name, 0o700)
        for name in files:
            os.chmod(Path(folder) / name, 0o600)
