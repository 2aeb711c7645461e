"""``crm-inbox analytics refresh|export|status``: one line for people and cron; exit 1 with one clear line on
stderr when the operative database or the store cannot be reached (never a traceback, never a password).

Only the standard library at import time: cli builds its parser for every command (serve, user add, …) with
``add_parser``, and none of them may load DuckDB or the refresh for it. The commands import them when run.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from crm_inbox.errors import AnalyticsUnavailable

if TYPE_CHECKING:
    from crm_inbox.config import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``analytics`` command and its actions (called by cli._parser)."""
    analytics = sub.add_parser("analytics", help="the analytical store: refresh, Parquet export, status") \
        .add_subparsers(dest="analytics_command", required=True, metavar="ACTION", help="what to do")
    run = analytics.add_parser("refresh", help="bring the analytical store up to date from the operative database")
    run.add_argument("--full", action="store_true", help="rebuild it from scratch instead of only what changed")
    export = analytics.add_parser("export", help="write the store's facts and dimensions as Parquet, by month")
    export.add_argument("directory", metavar="DIR", type=Path, help="where to write the files")
    analytics.add_parser("status", help="the last refresh and the rows per table")


def cmd_analytics(settings: Settings, args: argparse.Namespace) -> int:
    store = settings.analytics.store_path(settings.service.instance_dir)
    match args.analytics_command:
        case "refresh":
            return _refresh(settings, store, full=args.full)
        case "export":
            return _export(store, args.directory)
        case _:
            return _status(store)


def _fail(message: str) -> int:
    print(f"crm-inbox: analytics: {message}", file=sys.stderr)
    return 1


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    # serve ends a running scheduled refresh with SIGTERM: unwind (the refresh removes its new file, the old
    # store stays), where Python's default would end the process at once.
    raise SystemExit(143)


def _refresh(settings: Settings, store: Path, *, full: bool) -> int:
    from crm_inbox.analytics.refresh import RefreshFailed, refresh

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        result = refresh(settings, full=full)
    except RefreshFailed as exc:
        return _fail(str(exc))
    if result.skipped == "busy":
        print("analytics: another refresh is running; nothing done")
        return 0
    print(f"analytics: {result.mode} refresh, {len(result.rows)} tables, {sum(result.rows.values()):,} rows, "
          f"{result.seconds:.1f} s -> {store}")
    return 0


def _export(store: Path, directory: Path) -> int:
    from crm_inbox.analytics.export import ExportRefused, export_parquet

    try:
        written = export_parquet(store, directory)
    except AnalyticsUnavailable as exc:
        return _fail(f"{exc} (run: crm-inbox analytics refresh)")
    except ExportRefused as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {directory}: {exc.strerror or exc}")
    print(f"analytics: {len(written)} tables, {sum(written.values()):,} rows as Parquet -> {directory}")
    return 0


def _status(store: Path) -> int:
    from crm_inbox.analytics import schema
    from crm_inbox.analytics.store import open_store, read_info

    try:
        con = open_store(store)
    except AnalyticsUnavailable as exc:
        return _fail(f"{exc} (run: crm-inbox analytics refresh)")
    try:
        info = read_info(con)
        if info is not None:
            print(f"analytics: last refresh {info.refreshed_at:%Y-%m-%d %H:%M:%S} UTC, {info.mode}, "
                  f"{info.seconds:.1f} s, {store}")
        for table in (*schema.DIMENSIONS, *schema.FACTS):
            row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            print(f"  {table:<26} {int(row[0]) if row else 0:>12,}")
    finally:
        con.close()
    return 0
