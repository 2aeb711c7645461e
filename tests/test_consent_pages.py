"""Consent as people and staff meet it: the opt-out link's GET only asks (a link scanner unsubscribes nobody),
its POST opts out without cookies or a CSRF token (RFC 8058 one-click) and is idempotent, a bad link answers
400 with a page saying so; staff record an opt-in on the contact page and the printable proof lists it; the
double opt-in mail's link confirms only on the click; the consent API reads, records and proves."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_inbox.consent import double_opt_in as doi
from crm_inbox.consent import ledger
from crm_inbox.consent.policy import REASONS
from crm_inbox.db import unit_of_work
from crm_inbox.models import (
    Campaign,
    CampaignRecipient,
    Channel,
    ConsentRecord,
    ConsentState,
    Contact,
    ContactEmail,
    Direction,
    Interaction,
    InteractionKind,
    OutgoingMail,
    RecipientState,
    utcnow,
)
from crm_inbox.staff.service import add_staff
from tests.conftest import make_token
from tests.test_pages import PASSWORD, STAFF, csrf_token, log_in
from web.pages.consent_labels import REASON_LABELS, REASON_SHORT

PETRA = "petra.koehler@example.com"
API = "/api/v1"


@pytest.fixture
def petra(factory) -> int:  # type: ignore[no-untyped-def]
    """Petra, with a campaign mail released to her (its figures learn of her opt-out)."""
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        person = Contact(name="Petra Köhler", language="de")
        person.emails = [ContactEmail(email=PETRA)]
        session.add(person)
        session.flush()
        campaign = Campaign(name="Frühjahr", channel=Channel.EMAIL, subject="Neu", body="Text")
        session.add(campaign)
        session.flush()
        session.add(CampaignRecipient(campaign_id=campaign.id, contact_id=person.id, address=PETRA,
                                      state=RecipientState.RELEASED, released_at=utcnow()))
        return person.id


def _secret(app: Any) -> str:
    return doi.instance_secret(app.extensions["crm_inbox"].settings)


def _records(factory: Any, contact_id: int) -> list[tuple[str, str]]:
    with unit_of_work(factory) as session:
        return [(r.channel.value, r.state.value) for r in ledger.records(session, contact_id)]


def test_the_opt_out_link_asks_on_get_and_acts_on_a_cookieless_post_once(app, factory, petra):
    token = doi.opt_out_token(_secret(app), petra, PETRA)
    scanner = app.test_client()
    shown = scanner.get(f"/unsubscribe/{token}")
    assert shown.status_code == 200
    page = shown.get_data(as_text=True)
    assert "Confirm unsubscribe" in page and f'action="/unsubscribe/{token}"' in page and 'method="post"' in page
    assert "Log out" not in page  # no staff navigation
    scanner.head(f"/unsubscribe/{token}")
    assert _records(factory, petra) == []  # fetching the link changed nothing

    # What a mailbox provider sends (RFC 8058): a POST with this body, no cookie, no CSRF token.
    provider = app.test_client(use_cookies=False)
    done = provider.post(f"/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                         content_type="application/x-www-form-urlencoded")
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "You have been unsubscribed" in done.get_data(as_text=True)
    assert "Set-Cookie" not in done.headers
    assert _records(factory, petra) == [("email", "opted_out")]
    with unit_of_work(factory) as session:
        assert ledger.current(session, [petra], Channel.EMAIL)[petra].state == ConsentState.OPTED_OUT
        recipient = session.execute(select(CampaignRecipient)).scalar_one()
        assert recipient.opted_out_at is not None  # the campaign counts the opt-out
        first = recipient.opted_out_at

    again = provider.post(f"/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                          content_type="application/x-www-form-urlencoded")
    assert again.status_code == 200 and "already" in again.get_data(as_text=True)
    assert _records(factory, petra) == [("email", "opted_out")]  # idempotent
    with unit_of_work(factory) as session:
        assert session.execute(select(CampaignRecipient)).scalar_one().opted_out_at == first


def test_the_opt_out_counts_for_the_campaign_whose_link_was_used(app, factory, petra):
    with unit_of_work(factory) as session:
        autumn = Campaign(name="Herbst", channel=Channel.EMAIL, subject="Neu", body="Text")
        session.add(autumn)
        session.flush()
        session.add(CampaignRecipient(campaign_id=autumn.id, contact_id=petra, address=PETRA,
                                      state=RecipientState.RELEASED, released_at=utcnow()))
        autumn_id = autumn.id
    token = doi.opt_out_token(_secret(app), petra, PETRA, campaign_id=autumn_id)
    done = app.test_client(use_cookies=False).post(f"/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                                                   content_type="application/x-www-form-urlencoded")
    assert done.status_code == 200
    with unit_of_work(factory) as session:
        marked = {r.campaign_id: r.opted_out_at is not None for r in session.execute(select(CampaignRecipient))
                  .scalars()}
    assert marked[autumn_id] and list(marked.values()).count(True) == 1  # spring's mail did not make her go


def test_triage_acts_only_on_a_chosen_decision_about_a_wish_to_unsubscribe(client, factory, petra):
    with unit_of_work(factory) as session:
        reply = Interaction(kind=InteractionKind.EMAIL, direction=Direction.IN, subject="AW: Frühjahr",
                            occurred_at=utcnow(), details={"unsubscribe_suggestion": {
                                "contact_id": petra, "words": "austragen", "address": PETRA}})
        session.add(reply)
        session.flush()
        reply_id = reply.id
    log_in(client)
    token = csrf_token(client.get("/triage").get_data(as_text=True))
    for data in ({}, {"decision": ""}, {"decision": "maybe"}, {"decision": "Confirm"}):
        refused = client.post(f"/triage/{reply_id}/unsubscribe", data={"csrf_token": token, **data})
        assert refused.status_code == 400, data
        assert "confirm or to dismiss" in refused.get_data(as_text=True)
    with unit_of_work(factory) as session:
        assert "unsubscribe_suggestion" in session.get_one(Interaction, reply_id).details  # still waiting
    assert client.post(f"/triage/{reply_id}/unsubscribe",
                       data={"csrf_token": token, "decision": "dismiss"}).status_code == 302
    with unit_of_work(factory) as session:
        assert session.get_one(Interaction, reply_id).details["unsubscribe_decided"]["outcome"] == "dismissed"
    assert _records(factory, petra) == []


@pytest.mark.parametrize("token", ["nonsense", "a.b", "x" * 500, "eyJjIjoxfQ.forged-mac"])
def test_a_bad_link_answers_400_with_a_page_never_500(app, factory, petra, token):
    client = app.test_client(use_cookies=False)
    for path in (f"/unsubscribe/{token}", f"/consent/confirm/{token}"):
        response = client.post(path, data="List-Unsubscribe=One-Click",
                               content_type="application/x-www-form-urlencoded")
        assert response.status_code == 400, path
        assert "This link is not valid" in response.get_data(as_text=True)
    # a confirmation token is no opt-out token and the other way round
    other = doi.opt_out_token(_secret(app), petra, PETRA)
    assert client.post(f"/consent/confirm/{other}").status_code == 400
    assert _records(factory, petra) == []


def test_an_expired_or_overtaken_confirmation_link_says_so(app, factory, petra):
    with unit_of_work(factory) as session:
        _row, expired = doi.request_confirmation(session, _secret(app), petra, PETRA, source="web_form",
                                                 max_age=timedelta(seconds=-1))
        _row, overtaken = doi.request_confirmation(session, _secret(app), petra, PETRA, source="web_form")
        ledger.record(session, petra, Channel.EMAIL, ConsentState.OPTED_OUT, None, "unsubscribe", {})
    client = app.test_client(use_cookies=False)
    old = client.post(f"/consent/confirm/{expired}")
    assert old.status_code == 400 and "has expired" in old.get_data(as_text=True)
    late = client.post(f"/consent/confirm/{overtaken}")
    assert late.status_code == 409 and "subscribe again" in late.get_data(as_text=True)
    assert _records(factory, petra) == [("email", "pending"), ("email", "pending"), ("email", "opted_out")]


def test_staff_record_an_opt_in_and_the_proof_page_lists_it(client, factory, petra):
    log_in(client)
    contact_page = client.get(f"/contacts/{petra}").get_data(as_text=True)
    assert 'id="consent"' in contact_page and "Send double opt-in mail" in contact_page
    token = csrf_token(contact_page)
    recorded = client.post(f"/contacts/{petra}/consent", data={
        "csrf_token": token, "channel": "phone", "state": "opted_in", "legal_basis": "consent",
        "source": "fair", "proof": "Am Messestand mündlich zugestimmt, Zeugin: Frau Weber", "occurred_at": ""})
    assert recorded.status_code == 302 and recorded.headers["Location"].endswith(f"/contacts/{petra}#consent")
    assert _records(factory, petra) == [("phone", "opted_in")]
    page = client.get(f"/contacts/{petra}").get_data(as_text=True)
    row = re.search(r'<tr class="channel-phone">(.*?)</tr>', page, re.S)
    assert row and "opted in" in row.group(1) and "consent" in row.group(1)

    # refused, with the reason, never a 500: the existing-customer exception is for e-mail only
    refused = client.post(f"/contacts/{petra}/consent", data={
        "csrf_token": token, "channel": "letter", "state": "opted_in", "legal_basis": "existing_customer",
        "source": "staff", "proof": ""}, follow_redirects=True)
    assert refused.status_code == 200 and "e-mail only" in refused.get_data(as_text=True)
    for bad in ({"channel": "fax", "state": "opted_in"}, {"channel": "email", "state": "maybe"},
                {"channel": "email", "state": "opted_in", "occurred_at": "31.12.2026"}):
        assert client.post(f"/contacts/{petra}/consent", data={"csrf_token": token, **bad}).status_code == 302
    assert _records(factory, petra) == [("phone", "opted_in")]

    proof = client.get(f"/contacts/{petra}/consent/proof")
    assert proof.status_code == 200
    printed = proof.get_data(as_text=True)
    assert "Proof of consent" in printed and "Am Messestand mündlich zugestimmt, Zeugin: Frau Weber" in printed
    assert "fair" in printed and "Jonas Becker" in printed
    assert "@media print" in client.get("/static/consent.css").get_data(as_text=True)


def test_every_reason_code_has_one_label_and_the_proof_says_it_in_words(client, factory, petra):
    assert set(REASON_LABELS) == set(REASON_SHORT) == set(REASONS) | {"no_address", "no_postal_address"}
    with unit_of_work(factory) as session:
        ledger.record(session, petra, Channel.EMAIL, ConsentState.OPTED_OUT, None, "unsubscribe", {})
    log_in(client)
    printed = client.get(f"/contacts/{petra}/consent/proof").get_data(as_text=True)
    assert "the person opted out (objected) for this channel" in printed


def test_the_double_opt_in_mail_confirms_only_on_the_click(app, client, factory, petra):
    log_in(client)
    token = csrf_token(client.get(f"/contacts/{petra}").get_data(as_text=True))
    sent = client.post(f"/contacts/{petra}/consent/double-opt-in", data={"csrf_token": token, "address": PETRA})
    assert sent.status_code == 302
    assert _records(factory, petra) == [("email", "pending")]
    with unit_of_work(factory) as session:
        mail = session.execute(select(OutgoingMail).where(OutgoingMail.purpose == "double_opt_in")).scalar_one()
        assert mail.to_address == PETRA and mail.subject == "Bitte bestätigen Sie Ihre Anmeldung"  # her language
    link = re.search(r"http://localhost(/consent/confirm/\S+)", mail.body)
    assert link, mail.body

    visitor = app.test_client(use_cookies=False)
    shown = visitor.get(link.group(1))
    assert shown.status_code == 200 and "Confirm your subscription" in shown.get_data(as_text=True)
    assert _records(factory, petra) == [("email", "pending")]  # a scanner's GET confirms nothing
    confirmed = visitor.post(link.group(1), headers={"User-Agent": "Thunderbird"},
                             environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert confirmed.status_code == 200 and "confirmed" in confirmed.get_data(as_text=True)
    assert visitor.post(link.group(1)).status_code == 200  # a second click: the same answer, nothing new
    assert _records(factory, petra) == [("email", "pending"), ("email", "opted_in")]
    with unit_of_work(factory) as session:
        row = session.execute(select(ConsentRecord).where(ConsentRecord.state == ConsentState.OPTED_IN)).scalar_one()
        assert row.source == "double_opt_in" and row.proof["ip"] == "192.0.2.7"
        assert row.proof["user_agent"] == "Thunderbird"
    printed = client.get(f"/contacts/{petra}/consent/proof").get_data(as_text=True)
    assert "double_opt_in" in printed and "192.0.2.7" in printed

    # an address that is not hers is refused with a message, and nothing is mailed or recorded
    refused = client.post(f"/contacts/{petra}/consent/double-opt-in",
                          data={"csrf_token": token, "address": "x@y.example"}, follow_redirects=True)
    assert "No confirmation mail sent" in refused.get_data(as_text=True)
    assert "queued" not in refused.get_data(as_text=True)
    with unit_of_work(factory) as session:
        assert session.scalar(select(func.count()).select_from(OutgoingMail)) == 1
    assert _records(factory, petra) == [("email", "pending"), ("email", "opted_in")]


def test_the_api_starts_a_double_opt_in_that_only_the_click_confirms(app, client, factory, petra):
    auth = {"Authorization": f"Bearer {make_token(factory, 'api@beispiel-firma.de', 'staff')}"}
    url = f"{API}/contacts/{petra}/consent/double-opt-in"
    started = client.post(url, headers=auth, json={"address": PETRA.upper(), "language": "en", "source": "web_form",
                                                   "proof": {"form": "newsletter", "ip": "198.51.100.4"}})
    assert started.status_code == 201, started.json
    assert started.json["state"] == "pending" and started.json["source"] == "web_form"
    assert started.json["proof"]["form"] == "newsletter" and started.json["proof"]["address"] == PETRA
    with unit_of_work(factory) as session:
        mail = session.execute(select(OutgoingMail).where(OutgoingMail.purpose == "double_opt_in")).scalar_one()
        assert mail.to_address == PETRA and mail.subject == "Please confirm your subscription"  # as asked
    link = re.search(r"http://localhost(/consent/confirm/\S+)", mail.body)
    assert link, mail.body
    visitor = app.test_client(use_cookies=False)
    assert visitor.get(link.group(1)).status_code == 200
    assert _records(factory, petra) == [("email", "pending")]  # not before the click
    assert visitor.post(link.group(1)).status_code == 200
    assert _records(factory, petra) == [("email", "pending"), ("email", "opted_in")]

    for body, field in (({}, "address"), ({"address": "x@y.example"}, "address"),
                        ({"address": f"{PETRA}, x@y.example"}, "address"),
                        ({"address": PETRA, "language": "fr"}, "language"),
                        ({"address": PETRA, "proof": "text"}, "proof"), ({"address": PETRA, "colour": 1}, "colour"),
                        ({"address": PETRA, "source": "x" * 51}, "source")):
        refused = client.post(url, headers=auth, json=body)
        assert refused.status_code == 400 and refused.json["error"]["field"] == field, (body, refused.json)
    assert client.post(f"{API}/contacts/999999/consent/double-opt-in", headers=auth,
                       json={"address": PETRA}).status_code == 404
    reader = {"Authorization": f"Bearer {make_token(factory, 'reader@beispiel-firma.de', 'readonly')}"}
    assert client.post(url, headers=reader, json={"address": PETRA}).status_code == 403
    assert _records(factory, petra) == [("email", "pending"), ("email", "opted_in")]  # nothing half-done
    with unit_of_work(factory) as session:
        assert session.scalar(select(func.count()).select_from(OutgoingMail)) == 1


def test_the_consent_api_reads_records_and_proves(client, factory, petra):
    auth = {"Authorization": f"Bearer {make_token(factory, 'api@beispiel-firma.de', 'staff')}"}
    before = client.get(f"{API}/contacts/{petra}/consent", headers=auth).json
    assert {c["channel"]: c["state"] for c in before["channels"]} == {"email": "unknown", "letter": "unknown",
                                                                        "phone": "unknown"}
    created = client.post(f"{API}/contacts/{petra}/consent", headers=auth, json={
        "channel": "email", "state": "opted_in", "legal_basis": "consent", "source": "web_form",
        "proof": {"form": "newsletter", "ip": "198.51.100.4"}, "occurred_at": "2026-11-30T10:00:00+01:00"})
    assert created.status_code == 201, created.json
    assert created.json["state"] == "opted_in" and created.json["proof"]["form"] == "newsletter"
    now = client.get(f"{API}/contacts/{petra}/consent", headers=auth).json["channels"]
    email = next(c for c in now if c["channel"] == "email")
    assert email["state"] == "opted_in" and email["ledger_allows"] and email["basis"] == "consent"

    for body, field in (({"channel": "email", "state": "opted_in", "source": "x"}, "legal_basis"),
                        ({"channel": "fax", "state": "opted_in", "source": "x"}, "channel"),
                        ({"channel": "email", "state": "opted_out", "source": "x", "occurred_at": "gestern"},
                         "occurred_at"),
                        ({"channel": "email", "state": "opted_out", "source": "x",
                          "occurred_at": "2026-01-01T10:00:00"}, "occurred_at"),
                        ({"channel": "email", "state": "opted_out"}, "source"),
                        ({"channel": "email", "state": "opted_out", "source": "x", "proof": "text"}, "proof")):
        refused = client.post(f"{API}/contacts/{petra}/consent", headers=auth, json=body)
        assert refused.status_code == 400 and refused.json["error"]["field"] == field, (body, refused.json)
    out = client.post(f"{API}/contacts/{petra}/consent", headers=auth,
                      json={"channel": "email", "state": "opted_out", "source": "phone_call"})
    assert out.status_code == 201
    again = client.post(f"{API}/contacts/{petra}/consent", headers=auth, json={
        "channel": "email", "state": "opted_in", "legal_basis": "existing_customer", "source": "x"})
    assert again.status_code == 409  # after an objection only their own consent opts them in again

    proof = client.get(f"{API}/contacts/{petra}/consent/proof", headers=auth).json
    email = next(c for c in proof["channels"] if c["channel"] == "email")
    assert [r["state"] for r in email["records"]] == ["opted_in", "opted_out"]
    assert client.get(f"{API}/contacts/999999/consent", headers=auth).status_code == 404
    reader = {"Authorization": f"Bearer {make_token(factory, 'reader@beispiel-firma.de', 'readonly')}"}
    assert client.get(f"{API}/contacts/{petra}/consent/proof", headers=reader).status_code == 200
    assert client.post(f"{API}/contacts/{petra}/consent", headers=reader,
                       json={"channel": "email", "state": "opted_out", "source": "x"}).status_code == 403
