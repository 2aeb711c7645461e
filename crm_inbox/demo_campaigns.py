"""The demo's campaign: long-standing Bavarian customers of category A nobody has written to or called for 90
days, a saved segment that finds them, their consent as the ledger records it (opted in by web form or double
opt-in, one who opted out, one whose address bounces, one never asked, one still unconfirmed), and a draft
campaign to them, so the campaign page shows its preview and who is left out why on first start. Nothing is sent:
the campaign stays a draft. Deterministic (no randomness), so two demos built alike are alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from crm_inbox.campaigns import service as campaigns
from crm_inbox.config import Settings
from crm_inbox.consent import ledger
from crm_inbox.models import (
    Category,
    Channel,
    ConsentState,
    Contact,
    ContactEmail,
    LegalBasis,
    Role,
    Salutation,
    StaffUser,
)
from crm_inbox.segments import service as segments

SEGMENT_NAMES = {"de": "Bayern, Kategorie A, 90 Tage ohne Kontakt",
                 "en": "Bavaria, category A, no contact for 90 days"}
# Bavaria's postcodes: 80000–87999 and 90000–97999 (a few at the edges belong to neighbours; near enough).
BAVARIA = {"all": [
    {"any": [{"field": "postcode", "op": "between", "value": ["80000", "87999"]},
             {"field": "postcode", "op": "between", "value": ["90000", "97999"]}]},
    {"field": "category", "op": "is", "value": "A"},
    {"field": "last_contact", "op": "older_than_days", "value": 90}]}

# name, salutation, title, street, postcode, city, address, consent ("in", "doi", "out", "pending", None),
# bouncing address
PEOPLE: tuple[tuple[str, Salutation, str | None, str, str, str, str, str | None, bool], ...] = (
    ("Franziska Huber", Salutation.FRAU, None, "Leopoldstraße 12", "80802", "München",
     "f.huber@huber-feinmechanik.example", "in", False),
    ("Josef Obermaier", Salutation.HERR, "Dr.", "Maximilianstraße 3", "86150", "Augsburg",
     "obermaier@obermaier-werkzeug.example", "in", False),
    ("Theresa Brandl", Salutation.FRAU, None, "Am Römerlager 8", "93047", "Regensburg",
     "theresa.brandl@brandl-metall.example", "doi", False),
    ("Korbinian Wagner", Salutation.HERR, None, "Königstraße 41", "90402", "Nürnberg",
     "k.wagner@wagner-cnc.example", "in", False),
    ("Maximilian Gruber", Salutation.HERR, None, "Ludwigstraße 20", "97070", "Würzburg",
     "m.gruber@gruber-anlagenbau.example", "out", False),
    ("Sophie Lechner", Salutation.FRAU, "Dr.", "Bahnhofstraße 5", "94032", "Passau",
     "lechner@lechner-praezision.example", "in", True),
    ("Andreas Hofbauer", Salutation.HERR, None, "Innstraße 14", "83022", "Rosenheim",
     "a.hofbauer@hofbauer-fraestechnik.example", None, False),
    ("Magdalena Eder", Salutation.FRAU, None, "Donaustraße 30", "85049", "Ingolstadt",
     "m.eder@eder-maschinen.example", "pending", False),
)

TEXTS = {
    "de": {
        "name": "Frühjahrs-Check Maschinenpark Bayern",
        "subject": "{{ company or name }}: Ihr Frühjahrs-Check zum Vorzugspreis",
        "body": "{{ greeting }}\n\n"
                "seit unserem letzten Kontakt ist einige Zeit vergangen. Im April sind unsere Servicetechniker "
                "wieder in Bayern unterwegs{% if city %}, auch in {{ city }}{% endif %}: Ein Frühjahrs-Check Ihrer "
                "Fräsmaschinen kostet bis Ende Mai nur die Anfahrtspauschale.\n\n"
                "Antworten Sie einfach auf diese Mail, dann melde ich mich mit einem Terminvorschlag.\n\n"
                "Mit freundlichen Grüßen\n{{ owner or 'Ihr Serviceteam' }}",
    },
    "en": {
        "name": "Spring check for Bavarian machine parks",
        "subject": "{{ company or name }}: your spring check at a special price",
        "body": "{{ greeting }}\n\n"
                "it has been a while since we last spoke. In April our service engineers are touring Bavaria "
                "again{% if city %}, {{ city }} included{% endif %}: until the end of May a spring check of your "
                "milling machines costs only the call-out charge.\n\n"
                "Just reply to this mail and I will suggest a date.\n\n"
                "Kind regards\n{{ owner or 'Your service team' }}",
    },
}


def _consent(session: Session, contact: Contact, state: str | None, address: str, now: datetime,
             actor: int) -> None:
    """The person's e-mail consent as the ledger would have it after a web form, a confirmation click or an
    opt-out link (backdated, as it happened before the demo starts)."""
    asked = now - timedelta(days=200)
    if state in ("in", "out"):
        ledger.record(session, contact.id, Channel.EMAIL, ConsentState.OPTED_IN, LegalBasis.CONSENT, "web_form",
                      {"form": "Newsletter-Anmeldung / newsletter sign-up", "address": address},
                      occurred_at=asked, actor=actor)
    if state == "doi":
        ledger.record(session, contact.id, Channel.EMAIL, ConsentState.PENDING, LegalBasis.CONSENT, "web_form",
                      {"address": address}, occurred_at=asked, actor=actor)
        ledger.record(session, contact.id, Channel.EMAIL, ConsentState.OPTED_IN, LegalBasis.CONSENT,
                      "double_opt_in", {"address": address, "confirmed": "link clicked"},
                      occurred_at=asked + timedelta(hours=2), actor=actor)
    if state == "pending":
        ledger.record(session, contact.id, Channel.EMAIL, ConsentState.PENDING, LegalBasis.CONSENT, "web_form",
                      {"address": address}, occurred_at=now - timedelta(days=3), actor=actor)
    if state == "out":
        ledger.record(session, contact.id, Channel.EMAIL, ConsentState.OPTED_OUT, None, "unsubscribe",
                      {"address": address, "how": "opt-out link"}, occurred_at=now - timedelta(days=40),
                      actor=actor)


def create_campaigns(session: Session, settings: Settings, staff_ids: Sequence[int], now: datetime,
                     language: str) -> dict[str, Any]:
    """The Bavarian customers, their consent, the segment and the draft campaign; returns their ids."""
    english = language == "en"
    owner = staff_ids[0]
    people: list[Contact] = []
    for name, salutation, title, street, postcode, city, address, _state, bouncing in PEOPLE:
        contact = Contact(name=name, salutation=salutation, title=title, role=Role.CUSTOMER, category=Category.A,
                          street=street, postcode=postcode, city=city, country="DE", owner_id=owner,
                          language="de", origin="import", tags=[], fields={},
                          created_at=now - timedelta(days=400))
        contact.emails = [ContactEmail(email=address, bouncing=bouncing)]
        session.add(contact)
        people.append(contact)
    session.flush()
    for contact, (_n, _s, _t, _st, _p, _c, address, consent, _b) in zip(people, PEOPLE, strict=True):
        _consent(session, contact, consent, address, now, owner)
    segment = segments.create(session, SEGMENT_NAMES["en" if english else "de"], BAVARIA, actor=owner,
                              description=None)
    texts = TEXTS["en" if english else "de"]
    campaign = campaigns.create(session, settings, name=texts["name"], segment_id=segment.id,
                                channel=Channel.EMAIL, subject=texts["subject"], body=texts["body"],
                                sender_name=session.get_one(StaffUser, owner).name, actor=owner)
    return {"segment": segment.id, "campaign": campaign.id, "contacts": [c.id for c in people]}
