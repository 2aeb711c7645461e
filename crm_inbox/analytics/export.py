"""``crm-inbox analytics export DIR``: the store's facts and dimensions as Parquet files, for whatever engine a
company grows into (DuckDB, Spark, Trino, a cloud warehouse).

Facts are partitioned by month in Hive style (``DIR/fact_call/month=2026-03/data_0.parquet``), dimensions are
one file each (``DIR/dim_contact.parquet``). Rows whose partition date is empty (a campaign send not sent yet)
go to ``month=__HIVE_DEFAULT_PARTITION__``, which Hive, Spark and Trino read as NULL. DuckDB writes the files
itself (COPY … FORMAT parquet), reading the store read-only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from crm_inbox.analytics import schema
from crm_inbox.analytics.store import open_store

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def export_parquet(store_path: Path, out_dir: Path) -> dict[str, int]:
    """Write every table of schema.EXPORT_PARTITIONS under ``out_dir`` (a table's earlier export there is
    replaced); the rows written per table. Raises AnalyticsUnavailable when the store cannot be read."""
    con = open_store(store_path)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
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
        return written
    finally:
        con.close()
