"""``crm-inbox import FILE [--mapping FILE] [--dry-run] [--yes]`` and ``crm-inbox import --undo BATCH``: read,
map, preview (with a progress bar), ask, import; print the batch number and how to undo it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import check_schema, make_engine, make_sessionmaker
from crm_inbox.errors import Conflict, NotFound, ValidationError

PREVIEW_ROWS = 15
CLI_TEXT = 30


def _factory(settings: Settings) -> sessionmaker[Session]:
    engine = make_engine(settings.database.url, echo=settings.database.echo)
    check_schema(engine)  # SchemaOutdated: the CLI prints what to run
    return make_sessionmaker(engine)


def _fail(message: str) -> int:
    print(f"crm-inbox: {message}", file=sys.stderr)
    return 2


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from crm_inbox.imports.mapping import check_mapping, suggest_mapping
    from crm_inbox.imports.readers import read_table
    from crm_inbox.imports.service import preview_import, run_import, undo_import

    if args.undo is not None:
        try:
            counts = undo_import(_factory(settings), args.undo, None)
        except (NotFound, Conflict) as exc:
            return _fail(str(exc))
        print(f"import {args.undo} undone: removed {counts['removed']} records, restored {counts['restored']} "
              f"fields, kept {counts['kept']} (changed or used since)")
        if counts["erased"]:
            print(f"  {counts['erased']} records of people erased since could not be restored")
        if counts["gone"]:
            print(f"  {counts['gone']} records were deleted since by other means (left alone)")
        return 0
    if args.file is None:
        return _fail("import: give a FILE (or --undo BATCH)")
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror or exc}")
    try:
        table = read_table(args.file.name, data)
        if args.mapping is not None:
            mapping = check_mapping(table.headers, _load_mapping(args.mapping, table.headers))
        else:
            mapping = suggest_mapping(table.headers)
    except ValidationError as exc:
        return _fail(f"{args.file}: {exc.message}")
    _print_mapping(table, mapping)
    factory = _factory(settings)
    try:
        result = _with_bar(len(table.rows), "preview",
                           lambda progress: preview_import(factory, settings, table, mapping, filename=args.file.name,
                                                           actor=None, progress=progress))
    except ValidationError as exc:
        return _fail(f"{args.file}: {exc.message}")
    _print_preview(result)
    if args.dry_run:
        print("dry run: nothing was written")
        return 0
    if not (result.counts["new"] or result.counts["update"]):
        print("nothing to import")
        return 0
    del result  # a 100,000-row preview's outcomes: not kept in memory while the import runs
    if not args.yes:
        try:
            answer = input("Import? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing imported")
            return 1
    result = _with_bar(len(table.rows), "import",
                       lambda progress: run_import(factory, settings, table, mapping, filename=args.file.name,
                                                   actor=None, progress=progress))
    print(f"imported as batch {result.batch_id}: {_summary(result.counts)}")
    print(f"to undo it: crm-inbox import --undo {result.batch_id}")
    return 0


def _load_mapping(path: Any, headers: list[str]) -> dict[str, str]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationError("mapping", f"cannot read the mapping {path}: {exc}") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("mapping"), dict):
        loaded = loaded["mapping"]  # a saved mapping as the API shows it
    if not isinstance(loaded, dict) or not all(isinstance(v, str | None) for v in loaded.values()):
        raise ValidationError("mapping", f"{path} must be a JSON object of column → field")
    # Columns a saved mapping knows but this file lacks are left out; the file's other columns are ignored.
    return {str(k): v or "" for k, v in loaded.items() if k in headers}


def _with_bar(total: int, label: str, work: Any) -> Any:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="row", desc=label, disable=not sys.stderr.isatty(), file=sys.stderr)
    try:
        return work(lambda done: bar.update(done - bar.n))
    finally:
        bar.close()


def _print_mapping(table: Any, mapping: dict[str, str]) -> None:
    extra = f", {table.encoding}" if table.encoding else ""
    extra += f", delimiter {table.delimiter!r}" if table.delimiter else ""
    print(f"{table.file_format}{extra}: {len(table.rows)} rows, {len(table.headers)} columns")
    width = min(max((len(h) for h in table.headers), default=0), 40)
    for header in table.headers:
        print(f"  {header[:40]:<{width}} -> {mapping.get(header) or '(ignored)'}")


def _summary(counts: dict[str, int]) -> str:
    return (f"new {counts['new']}, updates {counts['update']}, unchanged {counts['unchanged']}, duplicates "
            f"{counts['duplicate']}, errors {counts['error']}; companies new {counts['companies_new']}, "
            f"updated {counts['companies_update']}")


def _describe(outcome: Any) -> str:
    match outcome.action:
        case "update":
            what = f"contact {outcome.contact_id}" if outcome.contact_id else f"company {outcome.company_id}"
            return f"updates {what} ({'; '.join(_change(key, outcome.values.get(key)) for key in outcome.changed)})"
        case "unchanged":
            return "unchanged"
        case "duplicate":
            return f"duplicate of {outcome.detail}"
        case "error":
            return f"error: {outcome.detail}"
    return "new"


def _change(key: str, values: tuple[str, str] | None) -> str:
    """ "name: Klara Müller -> Klara Mueller", "email: + a@b.de"; values cut short (one line per row)."""
    from crm_inbox.imports.differences import ADDED

    if values is None:
        return key
    old, new = (v if len(v) <= CLI_TEXT else v[:CLI_TEXT - 1] + "…" for v in values)
    return f"{key}: + {new}" if key in ADDED else f"{key}: {old or '-'} -> {new or '-'}"


def _print_preview(result: Any) -> None:
    print(f"preview: {_summary(result.counts)}")
    shown = [o for o in result.rows if o.action != "unchanged"][:PREVIEW_ROWS]
    for outcome in shown:
        print(f"  row {outcome.row}: {outcome.label[:50]} - {_describe(outcome)}")
    hidden = len([o for o in result.rows if o.action != "unchanged"]) - len(shown)
    if hidden > 0:
        print(f"  … and {hidden} more")
