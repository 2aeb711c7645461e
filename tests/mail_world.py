"""The attribution corpus (tests/mail/): load its world into a database and run a sample through the
real intake and pipeline. Used by tests/test_attribution_samples.py and bench/attribution.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings, replace
from crm_inbox.db import unit_of_work
from crm_inbox.intake.store import Envelope, store
from crm_inbox.models import Company, CompanyDomain, Contact, ContactEmail, Interaction
from crm_inbox.pipeline.runner import process
from crm_inbox.staff.service import add_staff

CORPUS = Path(__file__).parent / "mail"
WORLD = json.loads((CORPUS / "world.json").read_text(encoding="utf-8"))


def sample_names() -> list[str]:
    return sorted(p.stem for p in CORPUS.glob("*.eml"))


def world_settings(settings: Settings) -> Settings:
    return replace(settings, mail={
        "crm_addresses": tuple(WORLD["crm_addresses"]), "support_addresses": tuple(WORLD["support_addresses"]),
        "staff_domains": tuple(WORLD["staff_domains"]), "trusted_authserv_ids": tuple(WORLD["trusted_authserv_ids"]),
        "free_mail_domains": tuple(WORLD["free_mail_domains"]),
    })


def load_world(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        for person in WORLD["staff"]:
            add_staff(session, person["emails"][0], person["name"], more_emails=person["emails"][1:])
        companies = {}
        for data in WORLD["companies"]:
            company = Company(name=data["name"], tags=[], fields={})
            company.domains = [CompanyDomain(domain=d) for d in data["domains"]]
            session.add(company)
            companies[data["name"]] = company
        session.flush()
        for data in WORLD["contacts"]:
            contact = Contact(name=data["name"], tags=[], fields={}, origin="manual")
            contact.emails = [ContactEmail(email=e.lower()) for e in data["emails"]]
            if data.get("company"):
                contact.company_id = companies[data["company"]].id
            session.add(contact)


@dataclass
class Observed:
    direction: str
    parties: list[list[str]]  # per linked contact: all its addresses
    unassigned: bool
    new_leads: list[dict[str, Any]]
    automatic: bool
    spoof_suspected: bool
    staff_note: str | None
    reason: str
    bouncing: list[str]
    interactions: int


def run_sample(factory: sessionmaker[Session], settings: Settings, name: str) -> tuple[dict[str, Any], Observed]:
    expected = json.loads((CORPUS / f"{name}.json").read_text(encoding="utf-8"))
    env = expected["envelope"]
    raw = (CORPUS / f"{name}.eml").read_bytes()
    accepted = store(factory, raw, Envelope(mail_from=env["mail_from"], rcpt_to=tuple(env["rcpt_to"]),
                                            peer=env["peer"], source="smtp"))
    outcome = process(factory, settings, accepted.inbound_id)
    assert outcome.interaction_id is not None, f"{name}: {outcome}"
    with factory() as session:
        interaction = session.get_one(Interaction, outcome.interaction_id)
        linked = [session.get_one(Contact, cid) for cid in interaction.contact_ids]
        new_ids = interaction.details.get("new_contact_ids", [])
        new_leads = []
        for cid in new_ids:
            contact = session.get_one(Contact, cid)
            company = session.get(Company, contact.company_id) if contact.company_id else None
            new_leads.append({"email": contact.emails[0].email, "name": contact.name,
                              "company": company.name if company else None})
        bouncing = list(session.execute(select(ContactEmail.email).where(ContactEmail.bouncing)).scalars())
        count = len(session.execute(select(Interaction.id).where(Interaction.kind == "email")).all())
        return expected, Observed(
            direction=interaction.direction.value,
            parties=[[e.email for e in c.emails] for c in linked],
            unassigned=not linked and interaction.direction.value != "internal",
            new_leads=new_leads,
            automatic=bool(interaction.details.get("automatic")),
            spoof_suspected=bool(interaction.details.get("spoof_suspected")),
            staff_note=interaction.details.get("staff_note"),
            reason=interaction.attribution_reason or "",
            bouncing=bouncing,
            interactions=count,
        )


def parties_match(expected: list[str], observed: list[list[str]]) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of contact attribution for one sample."""
    remaining = list(observed)
    tp = 0
    for email in expected:
        hit = next((c for c in remaining if email in c), None)
        if hit is not None:
            remaining.remove(hit)
            tp += 1
    return tp, len(remaining), len(expected) - tp
