"""Robots never become leads: leads created, share recognised as automatic and share of bounces whose
failed recipient was found, over the robot corpus in tests/mail-robots/ (and other folders of .eml).

Every message goes through the real intake and pipeline on a fresh SQLite database (one per folder,
holding a staff member and one known contact) as it arrived: with the SMTP envelope its sidecar names,
else as a file import would bring it, without one, so only the message itself (and a Return-Path it
carries) can tell. Leads and "automatic" are read from what the pipeline recorded; the failed
recipients from the same detector the pipeline runs.

    .venv/bin/python bench/bounces.py [--verbose] [--dir PATH [--robots]]

A folder's NAME.eml may have a NAME.json beside it as in tests/mail-robots/ (``automatic``, ``failed``,
``kind``). Without one a message counts as a robot only with ``--robots`` (a held-out set of bounces
and auto-replies); otherwise it is only reported (../shared/mail-samples/ holds ordinary test mail).
Exits non-zero when a robot created a lead or the targets (95 % automatic, 90 % failed recipients
found) are missed on a folder of robots.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from crm_inbox.config import Settings, replace  # noqa: E402
from crm_inbox.db import make_engine, make_sessionmaker, unit_of_work, upgrade  # noqa: E402
from crm_inbox.intake.store import Envelope, store  # noqa: E402
from crm_inbox.mail.automatic import _MTA_SENDER, detect_automatic  # noqa: E402
from crm_inbox.mail.bounces import STATUS_TYPES, is_delay_notice  # noqa: E402
from crm_inbox.mail.parse import MailParseError, parse_mail  # noqa: E402
from crm_inbox.models import Contact, ContactEmail, InboundMessage, Interaction  # noqa: E402
from crm_inbox.pipeline.runner import process  # noqa: E402
from crm_inbox.staff.service import add_staff  # noqa: E402

CRM = "crm@beispiel-firma.de"
OWN = ROOT / "tests" / "mail-robots"
SHARED = ROOT.parent / "shared" / "mail-samples"


@dataclass
class Tally:
    robots: int = 0
    automatic: int = 0
    robot_leads: int = 0
    dsns: int = 0
    dsn_found: int = 0
    humans: int = 0
    humans_automatic: int = 0
    unlabelled: int = 0
    unlabelled_automatic: int = 0
    unlabelled_leads: int = 0
    failed_to_parse: int = 0
    misses: list[str] = field(default_factory=list)


def _expectation(eml: Path, robots: bool) -> dict | None:
    sidecar = eml.with_suffix(".json")
    if sidecar.exists():
        return json.loads(sidecar.read_text(encoding="utf-8"))
    return {"automatic": True, "failed": None} if robots else None


def _is_dsn_unlabelled(raw: bytes) -> bool:
    """Without a sidecar: a bounce is a delivery-status report or a notice from an MTA (not a delay)."""
    try:
        mail = parse_mail(raw)
    except MailParseError:
        return False
    if any(p.get_content_type() in STATUS_TYPES for p in mail.message.walk()):
        return True
    author = mail.author
    return bool(author and _MTA_SENDER.match(author.local_part)) and not is_delay_notice(mail.subject, mail.text)


def run_folder(folder: Path, robots: bool, verbose: bool) -> Tally:
    tally = Tally()
    files = sorted(folder.rglob("*.eml"))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bounces.db'}"
        engine = make_engine(url)
        upgrade(engine)
        factory = make_sessionmaker(engine)
        settings = replace(Settings(), database={"url": url},
                           mail={"crm_addresses": (CRM,), "staff_domains": ("beispiel-firma.de",)})
        with unit_of_work(factory) as session:
            add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt")
            klaus = Contact(name="Klaus Müller", tags=[], fields={}, origin="manual")
            klaus.emails = [ContactEmail(email="klaus.mueller@mueller-maschinenbau.de")]
            session.add(klaus)
        for eml in files:
            spec = _expectation(eml, robots)
            raw = eml.read_bytes()
            source = (spec or {}).get("source") or "file"
            mail_from = (spec or {}).get("mail_from") if source == "smtp" else None
            accepted = store(factory, raw, Envelope(mail_from=mail_from, rcpt_to=(CRM,), peer="203.0.113.5",
                                                    source=source))
            outcome = process(factory, settings, accepted.inbound_id)
            with factory() as session:
                interaction = session.get(Interaction, outcome.interaction_id) if outcome.interaction_id else None
                details = interaction.details if interaction is not None else {}
                envelope_from = session.execute(select(InboundMessage.envelope_from).where(
                    InboundMessage.id == accepted.inbound_id)).scalar_one()
            automatic = bool(details.get("automatic"))
            leads = len(details.get("new_contact_ids") or [])
            if interaction is None:
                tally.failed_to_parse += 1
            try:
                detected = detect_automatic(parse_mail(raw), envelope_from)
            except MailParseError:
                detected = None
            found = list(detected.bounced) if detected else []
            name = eml.relative_to(folder)
            if spec is None:
                tally.unlabelled += 1
                tally.unlabelled_automatic += automatic
                tally.unlabelled_leads += leads
            elif not spec["automatic"]:
                tally.humans += 1
                tally.humans_automatic += automatic
                if automatic:
                    tally.misses.append(f"{name}: a person's mail taken for automatic ({details.get('automatic')})")
            else:
                tally.robots += 1
                tally.automatic += automatic
                tally.robot_leads += leads
                if not automatic:
                    tally.misses.append(f"{name}: not recognised as automatic")
                if leads:
                    tally.misses.append(f"{name}: created {leads} lead(s)")
                expected_failed = spec["failed"]
                is_dsn = bool(expected_failed) if expected_failed is not None else _is_dsn_unlabelled(raw)
                if is_dsn:
                    tally.dsns += 1
                    ok = bool(found) and (expected_failed is None or set(expected_failed) <= set(found))
                    tally.dsn_found += ok
                    if not ok:
                        tally.misses.append(f"{name}: failed recipients {expected_failed or '?'}, found {found}")
            if verbose:
                print(f"  {str(name)[:48]:48} automatic={'yes' if automatic else 'no '} leads={leads} "
                      f"failed={found}  {str(details.get('automatic') or '')[:60]}")
        engine.dispose()
    return tally


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} {part / whole:.1%}" if whole else "–"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true", help="print every message's outcome")
    parser.add_argument("--dir", type=Path, action="append", default=[], help="another folder of .eml files")
    parser.add_argument("--robots", action="store_true", help="messages in --dir without a sidecar are robots")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    folders = [(OWN, False), *((d, args.robots) for d in args.dir)]
    if SHARED.is_dir() and not args.dir:
        folders.append((SHARED, False))
    ok = True
    print(f"{'folder':40} {'robots':>6} {'leads':>6} {'recognised automatic':>22} {'failed recipient found':>24}")
    for folder, robots in folders:
        if args.verbose:
            print(f"{folder}:")
        t = run_folder(folder, robots, args.verbose)
        label = str(folder.relative_to(ROOT.parent) if folder.is_relative_to(ROOT.parent) else folder)
        print(f"{label[-40:]:40} {t.robots:>6} {t.robot_leads:>6} {_pct(t.automatic, t.robots):>22} "
              f"{_pct(t.dsn_found, t.dsns):>24}")
        if t.humans:
            print(f"{'':40} people's mail: {t.humans}, taken for automatic: {t.humans_automatic}")
        if t.unlabelled:
            print(f"{'':40} without expectations: {t.unlabelled} mails, {t.unlabelled_automatic} recognised "
                  f"automatic, {t.unlabelled_leads} leads created (reported only)")
        if t.failed_to_parse:
            print(f"{'':40} not processed (unparseable): {t.failed_to_parse}")
        for miss in t.misses:
            print("    " + miss)
        if t.robots:
            ok = ok and t.robot_leads == 0 and t.humans_automatic == 0 and t.automatic >= 0.95 * t.robots and (
                not t.dsns or t.dsn_found >= 0.90 * t.dsns)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
