"""The consent ledger: append-only records where the latest wins, the § 7 UWG / GDPR policy per channel, double
opt-in and one-click opt-out links, the printable proof, and consent in the data-protection export and erasure."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from crm_inbox.consent import double_opt_in as doi
from crm_inbox.consent import ledger, proof
from crm_inbox.consent.policy import Consent, Decision, may_receive
from crm_inbox.contacts.merge import merge_contacts
from crm_inbox.db import unit_of_work
from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.models import (
    AuditEntry,
    Channel,
    ConsentRecord,
    ConsentState,
    ConsentSuppression,
    Contact,
    ContactEmail,
    ContactPhone,
    LegalBasis,
    utcnow,
)
from crm_inbox.privacy.service import erase_contact, write_export
from crm_inbox.staff.service import add_staff

SECRET = "test-secret-key"
E, L, P = Channel.EMAIL, Channel.LETTER, Channel.PHONE
IN, OUT, PENDING = ConsentState.OPTED_IN, ConsentState.OPTED_OUT, ConsentState.PENDING
C, EC, PC = LegalBasis.CONSENT, LegalBasis.EXISTING_CUSTOMER, LegalBasis.PRESUMED_CONSENT
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _c(state: ConsentState, basis: LegalBasis | None = None, objected: bool = False) -> Consent:
    return Consent(state=state, basis=basis, occurred_at=T0, record_id=1, objected=objected)


# (channel, current consent, facts, expected): one row per rule of the policy's docstrings.
POLICY = [
    # e-mail: consent, or the existing customer with a recorded notice and an order; never bouncing or opted out
    (E, None, {}, Decision.deny("no_consent")),
    (E, None, {"has_order": True}, Decision.deny("no_notice")),
    (E, _c(IN, C), {}, Decision.allow("consent")),
    (E, _c(PENDING, C), {}, Decision.deny("pending")),
    (E, _c(IN, EC), {"has_order": True}, Decision.allow("existing_customer")),
    (E, _c(IN, EC), {}, Decision.deny("no_purchase")),
    (E, _c(IN, EC, objected=True), {"has_order": True}, Decision.deny("opted_out")),
    (E, _c(OUT), {"has_order": True}, Decision.deny("opted_out")),
    (E, _c(IN, C), {"bouncing": True}, Decision.deny("bouncing")),
    (E, _c(IN, C), {"erased": True}, Decision.deny("erased")),
    # letter: legitimate interest until they object; bouncing mail does not matter
    (L, None, {}, Decision.allow("legitimate_interest")),
    (L, None, {"bouncing": True}, Decision.allow("legitimate_interest")),
    (L, _c(IN, C), {}, Decision.allow("consent")),
    (L, _c(OUT), {}, Decision.deny("opted_out")),
    (L, None, {"erased": True}, Decision.deny("erased")),
    # phone: consumers only with consent; businesses with consent or a recorded presumed consent
    (P, None, {}, Decision.deny("no_consent")),
    (P, None, {"b2b": True}, Decision.deny("no_consent")),
    (P, _c(IN, C), {}, Decision.allow("consent")),
    (P, _c(IN, PC), {"b2b": True}, Decision.allow("presumed_consent")),
    (P, _c(IN, PC), {}, Decision.deny("consumer_phone")),
    (P, _c(OUT), {"b2b": True}, Decision.deny("opted_out")),
]


@pytest.mark.parametrize(("channel", "consent", "facts", "expected"), POLICY)
def test_policy_follows_uwg_and_gdpr(channel, consent, facts, expected):
    assert may_receive(channel, consent, **facts) == expected


@pytest.fixture
def people(factory):
    with unit_of_work(factory) as session:
        staff = add_staff(session, "chefin@beispiel-firma.de", "Chefin", "admin")
        petra = Contact(name="Petra Schmidt", tags=[], fields={})
        petra.emails = [ContactEmail(email="petra@example.com")]
        petra.phones = [ContactPhone(raw="0171 2345678", e164="+491712345678")]
        other = Contact(name="Otto Ohne", tags=[], fields={})
        session.add_all([petra, other])
        session.flush()
        return {"staff": staff.id, "petra": petra.id, "other": other.id}


def _count(session, model) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_records_append_the_latest_wins_and_each_is_audited(factory, people):
    petra, staff = people["petra"], people["staff"]
    with unit_of_work(factory) as session:
        first = ledger.record(session, petra, "email", "opted_in", "consent", "web_form", {"form": "newsletter"},
                              occurred_at=utcnow() - timedelta(days=30), actor=staff)
        assert ledger.current(session, [petra, people["other"]], E) == {
            petra: Consent(IN, C, first.occurred_at, first.id, objected=False), people["other"]: None}
        ledger.record(session, petra, E, OUT, None, "staff", {"note": "asked on the phone"}, actor=staff)
        # an old consent imported afterwards never outranks the later opt-out
        ledger.record(session, petra, E, IN, C, "import", {}, occurred_at=utcnow() - timedelta(days=400))
    with unit_of_work(factory) as session:
        now = ledger.current(session, [petra], E)[petra]
        assert now is not None and now.state == OUT and now.objected
        assert ledger.current(session, [petra], L)[petra] is None  # per channel
        # the same latest record in bulk, for the segments' and campaigns' joins
        assert session.execute(ledger.latest_query(E)).all() == [(petra, now.record_id)]
        assert [r.state for r in ledger.records(session, petra, E)] == [IN, IN, OUT]  # all kept, by time
        entries = session.execute(select(AuditEntry).where(AuditEntry.action == "consent")
                                  .order_by(AuditEntry.id)).scalars().all()
        assert [(e.object_type, e.object_id, e.details["state"], e.staff_id) for e in entries] == [
            ("contact", petra, "opted_in", staff), ("contact", petra, "opted_out", staff),
            ("contact", petra, "opted_in", None)]
        # existing-customer mail ends for good with an objection: only a new consent opts in again
        with pytest.raises(Conflict):
            ledger.record(session, petra, E, IN, EC, "order", {"order": "A-1"})
        assert ledger.record(session, petra, E, IN, C, "web_form", {}).state == IN


@pytest.mark.parametrize(("args", "error", "field"), [
    ((E, IN, None, "staff"), ValidationError, "legal_basis"),
    ((E, OUT, C, "staff"), ValidationError, "legal_basis"),
    ((P, IN, EC, "staff"), ValidationError, "legal_basis"),
    ((E, IN, PC, "staff"), ValidationError, "legal_basis"),
    ((L, PENDING, C, "staff"), ValidationError, "state"),
    (("fax", IN, C, "staff"), ValidationError, "channel"),
    ((E, IN, C, " "), ValidationError, "source"),
])
def test_a_record_that_proves_nothing_is_refused(factory, people, args, error, field):
    with unit_of_work(factory) as session, pytest.raises(error) as caught:
        ledger.record(session, people["petra"], *args)
    assert caught.value.field == field


def test_no_record_for_a_stranger_or_from_the_future(factory, people):
    with unit_of_work(factory) as session:
        with pytest.raises(NotFound):
            ledger.record(session, 999_999, E, IN, C, "staff")
        with pytest.raises(ValidationError, match="future"):
            ledger.record(session, people["petra"], E, IN, C, "staff", occurred_at=utcnow() + timedelta(hours=1))
        assert _count(session, ConsentRecord) == 0


def _tamper(token: str) -> str:
    body, mac = token.split(".")
    return body[:-1] + ("A" if body[-1] != "A" else "B") + "." + mac


def test_double_opt_in_needs_the_click_and_a_second_click_changes_nothing(factory, people):
    petra = people["petra"]
    with unit_of_work(factory) as session:
        pending, token = doi.request_confirmation(session, SECRET, petra, "Petra@Example.com", source="web_form",
                                                  proof={"form": "newsletter", "ip": "192.0.2.1"})
        assert may_receive(E, ledger.current(session, [petra], E)[petra]) == Decision.deny("pending")
        with pytest.raises(ValidationError):
            doi.request_confirmation(session, SECRET, petra, "someone@else.example", source="web_form")
    for bad in (_tamper(token), token[:-3], "", "x" * 1000, doi.opt_out_token(SECRET, petra, "petra@example.com")):
        with unit_of_work(factory) as session, pytest.raises(ValidationError):
            doi.confirm(session, SECRET, bad, ip="192.0.2.9")
    with unit_of_work(factory) as session, pytest.raises(ValidationError):
        doi.confirm(session, "another instance's key", token, ip="192.0.2.9")
    with unit_of_work(factory) as session, pytest.raises(ValidationError, match="expired"):
        doi.confirm(session, SECRET, token, ip="192.0.2.9", now=utcnow() + doi.DOI_MAX_AGE + timedelta(minutes=1))
    with unit_of_work(factory) as session:
        done = doi.confirm(session, SECRET, token, ip="192.0.2.9", user_agent="Firefox")
        assert not done.already and done.record.source == "double_opt_in"
        assert done.record.proof["token_id"] == pending.id and done.record.proof["ip"] == "192.0.2.9"
        assert done.record.proof["address"] == "petra@example.com"
        first_id = done.record.id
    with unit_of_work(factory) as session:  # replayed, also after expiry: the same answer, nothing new
        for now in (None, utcnow() + timedelta(days=30)):
            again = doi.confirm(session, SECRET, token, ip="198.51.100.1", now=now)
            assert again.already and again.record.id == first_id
        assert _count(session, ConsentRecord) == 2
        assert may_receive(E, ledger.current(session, [petra], E)[petra]) == Decision.allow("consent")


def test_one_click_opt_out_acts_at_once_never_expires_and_is_idempotent(factory, people):
    petra = people["petra"]
    with unit_of_work(factory) as session:
        ledger.record(session, petra, E, IN, C, "web_form", {})
        _pending, confirm_token = doi.request_confirmation(session, SECRET, petra, "petra@example.com",
                                                           source="web_form")
    token = doi.opt_out_token(SECRET, petra, "petra@example.com")
    for bad in (_tamper(token), confirm_token, token + "x"):
        with unit_of_work(factory) as session, pytest.raises(ValidationError):
            doi.unsubscribe(session, SECRET, bad)
    with unit_of_work(factory) as session:
        out = doi.unsubscribe(session, SECRET, token, ip="203.0.113.5")
        assert out.record is not None and not out.already and out.record.state == OUT
        assert out.record.proof["address"] == "petra@example.com"
    with unit_of_work(factory) as session:
        again = doi.unsubscribe(session, SECRET, token)
        assert again.already and again.record is not None and again.record.id == out.record.id
        # a confirmation asked for before the opt-out does not undo it
        with pytest.raises(Conflict):
            doi.confirm(session, SECRET, confirm_token, ip="203.0.113.5")
        assert ledger.current(session, [petra], E)[petra].state == OUT
        assert [r.state for r in ledger.records(session, petra, E)] == [IN, PENDING, OUT]


def test_an_opt_out_link_older_than_its_contact_suppresses_the_address_instead(factory, people):
    """SQLite may give a new contact the id of an erased one: the old link must not opt out the new person."""
    petra = people["petra"]
    old = doi.opt_out_token(SECRET, petra, "someone-erased@example.com", issued_at=utcnow() - timedelta(days=365))
    with unit_of_work(factory) as session:
        ledger.record(session, petra, E, IN, C, "web_form", {})
        out = doi.unsubscribe(session, SECRET, old)
        assert out.suppressed and out.record is None and not out.already
        assert ledger.current(session, [petra], E)[petra].state == IN
        assert ledger.suppressed(session, E, ["someone-erased@example.com"])


def test_an_opt_out_link_names_the_campaign_its_mail_came_from(factory, people):
    petra = people["petra"]
    with_campaign = doi.opt_out_token(SECRET, petra, "petra@example.com", campaign_id=42)
    without = doi.opt_out_token(SECRET, petra, "petra@example.com")
    with unit_of_work(factory) as session:
        out = doi.unsubscribe(session, SECRET, with_campaign)
        assert out.campaign_id == 42 and out.record is not None and out.record.proof["campaign_id"] == 42
    with unit_of_work(factory) as session:
        again = doi.unsubscribe(session, SECRET, without)
        assert again.already and again.campaign_id is None


def test_proof_prints_the_whole_history_per_channel(factory, people):
    petra = people["petra"]
    with unit_of_work(factory) as session:
        ledger.record(session, petra, P, IN, C, "staff", {"note": "asked at the fair"}, actor=people["staff"])
        ledger.record(session, petra, E, OUT, None, "unsubscribe", {"ip": "203.0.113.5"})
    with unit_of_work(factory) as session:
        printed = proof.history(session, petra)
    json.dumps(printed)  # plain data, ready for a page or a PDF
    channels = {c["channel"]: c for c in printed["channels"]}
    assert channels["letter"]["state"] == "unknown" and channels["letter"]["records"] == []
    assert channels["phone"]["state"] == "opted_in" and channels["phone"]["ledger_allows"]
    assert channels["phone"]["records"][0]["recorded_by"] == "Chefin"
    assert channels["phone"]["records"][0]["proof"] == {"note": "asked at the fair"}
    assert channels["email"]["state"] == "opted_out" and not channels["email"]["ledger_allows"]
    assert channels["email"]["reason"] == "opted_out" and channels["phone"]["basis"] == "consent"
    assert printed["contact"]["emails"] == ["petra@example.com"]


def test_export_holds_the_records_and_erasure_leaves_only_a_hashed_suppression(factory, settings, people):
    petra = people["petra"]
    with unit_of_work(factory) as session:
        ledger.record(session, petra, E, IN, C, "web_form", {"form": "newsletter"})
        ledger.record(session, petra, P, OUT, None, "staff", {})
    target = io.BytesIO()
    with unit_of_work(factory) as session:
        counts = write_export(session, petra, target, None, settings=settings)
    data = json.loads(zipfile.ZipFile(target).read("contact.json"))
    assert counts["consent"] == 2
    assert [(r["channel"], r["state"], r["proof"]) for r in data["consent"]] == [
        ("email", "opted_in", {"form": "newsletter"}), ("phone", "opted_out", {})]
    opt_out = doi.opt_out_token(SECRET, petra, "petra@example.com")
    with unit_of_work(factory) as session:
        counts = erase_contact(session, petra, None, settings=settings)
        assert counts["consent_records"] == 2 and counts["addresses_suppressed"] == 2
    with unit_of_work(factory) as session:
        assert _count(session, ConsentRecord) == 0
        digests = session.execute(select(ConsentSuppression.digest)).scalars().all()
        assert len(digests) == 2 and all(len(d) == 64 for d in digests)  # hashes, never the address
        assert ledger.suppressed(session, E, ["PETRA@example.com ", "new@example.com"]) == {"PETRA@example.com "}
        assert ledger.suppressed(session, P, ["+491712345678"]) == {"+491712345678"}
        # the erased person's old opt-out link still answers, and changes nothing
        gone = doi.unsubscribe(session, SECRET, opt_out)
        assert gone.suppressed and gone.already and gone.record is None
        # a new contact with the address (a later import) stays suppressed until they confirm a new consent
        again = Contact(name="Petra S.", tags=[], fields={})
        again.emails = [ContactEmail(email="petra@example.com")]
        session.add(again)
        session.flush()
        _pending, token = doi.request_confirmation(session, SECRET, again.id, "petra@example.com", source="web_form")
        assert ledger.suppressed(session, E, ["petra@example.com"])
        assert doi.confirm(session, SECRET, token, ip="192.0.2.1").record.proof["suppression_lifted"] is True
        assert not ledger.suppressed(session, E, ["petra@example.com"])


def test_merging_keeps_both_histories(factory, people):
    with unit_of_work(factory) as session:
        ledger.record(session, people["petra"], E, IN, C, "web_form", {}, occurred_at=utcnow() - timedelta(days=2))
        ledger.record(session, people["other"], E, OUT, None, "unsubscribe", {})
        survivor, duplicate = session.get(Contact, people["petra"]), session.get(Contact, people["other"])
        merge_contacts(session, survivor, duplicate, None)
    with unit_of_work(factory) as session:
        assert len(ledger.records(session, people["petra"])) == 2
        assert ledger.current(session, [people["petra"]], E)[people["petra"]].state == OUT
