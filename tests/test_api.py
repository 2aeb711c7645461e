"""The JSON API under /api/v1, through Flask's test client: what a client of the API sees.

Mail reaches the timeline the real way (intake.accept, then worker.process), never by inserting rows.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.intake.store import Envelope, accept
from crm_inbox.models import ApiToken, AuditEntry, InboundState, utcnow
from crm_inbox.pipeline.runner import Outcome, process
from crm_inbox.staff.service import find_staff
from tests.conftest import CRM, make_settings, make_token

API = "/api/v1"
CUSTOMER = "kunde@kunde-gmbh.example"


# --- helpers ---

def assert_error(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """The response has ``status`` and a JSON body {"error": {"code", "message"[, "field"]}}."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.headers.get("Content-Type")
    error = response.json["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert error.get("field") == field, error
    return error


def ingest(factory: sessionmaker[Session], settings: Settings, raw: bytes) -> Outcome:
    with unit_of_work(factory) as session:
        accepted = accept(session, raw, Envelope(mail_from=CUSTOMER, rcpt_to=(CRM,), peer="127.0.0.1"))
    return process(factory, settings, accepted.inbound_id)


def customer_mail(subject: str, when: datetime, body: str = "Guten Tag,\nbitte um ein Angebot.\n",
                  message_id: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Karl Kunde <{CUSTOMER}>"
    msg["To"] = CRM
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = message_id or f"<{hashlib.sha1(subject.encode()).hexdigest()}@kunde-gmbh.example>"
    msg.set_content(body)
    return msg


def contact_id_for(client: Any, auth: dict[str, str], email: str) -> int:
    items = client.get(f"{API}/contacts", query_string={"email": email}, headers=auth).json["items"]
    assert len(items) == 1, items
    return int(items[0]["id"])


def create_company(client: Any, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(f"{API}/companies", json=body, headers=auth)
    assert response.status_code == 201, response.json
    return dict(response.json)


def create_contact(client: Any, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(f"{API}/contacts", json=body, headers=auth)
    assert response.status_code == 201, response.json
    return dict(response.json)


BASE_TIME = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


# --- authentication ---

def test_requests_without_a_valid_token_get_401_as_json(client, factory, token, auth):
    assert client.get(f"{API}/contacts", headers=auth).status_code == 200
    assert_error(client.get(f"{API}/contacts"), 401)
    assert_error(client.get(f"{API}/contacts", headers={"Authorization": "Bearer crm_not-a-token"}), 401)
    assert_error(client.get(f"{API}/contacts", headers={"Authorization": f"Basic {token}"}), 401)
    assert_error(client.post(f"{API}/contacts", json={"name": "X"}), 401)

    with unit_of_work(factory) as session:
        revoked = session.execute(
            update(ApiToken).where(ApiToken.token_hash == hashlib.sha256(token.encode()).hexdigest())
            .values(revoked_at=utcnow())).rowcount
    assert revoked == 1
    assert_error(client.get(f"{API}/contacts", headers=auth), 401)
    assert_error(client.get(f"{API}/contacts/1/timeline", headers=auth), 401)


def test_read_only_user_may_read_but_not_change(client, factory, auth):
    ro = {"Authorization": f"Bearer {make_token(factory, 'ro@beispiel-firma.de', role='readonly')}"}
    contact = create_contact(client, auth, name="Erika Muster")
    company = create_company(client, auth, name="Muster AG")

    assert client.get(f"{API}/contacts/{contact['id']}", headers=ro).status_code == 200
    assert_error(client.post(f"{API}/contacts", json={"name": "Neu"}, headers=ro), 403)
    assert_error(client.patch(f"{API}/contacts/{contact['id']}", json={"name": "Geändert"}, headers=ro), 403)
    assert_error(client.post(f"{API}/companies", json={"name": "Neu GmbH"}, headers=ro), 403)
    assert_error(client.patch(f"{API}/companies/{company['id']}", json={"name": "Neu"}, headers=ro), 403)
    assert client.get(f"{API}/contacts/{contact['id']}", headers=auth).json["name"] == "Erika Muster"
    assert [c["name"] for c in client.get(f"{API}/contacts", headers=auth).json["items"]] == ["Erika Muster"]


def test_unknown_paths_and_methods_answer_json(client, auth):
    assert_error(client.get(f"{API}/nothing-here", headers=auth), 404)
    assert_error(client.delete(f"{API}/contacts", headers=auth), 405)


# --- contacts ---

def test_create_contact(client, auth):
    company = create_company(client, auth, name="Kunde GmbH")
    response = client.post(f"{API}/contacts", headers=auth, json={
        "name": "  Klaus Müller ", "company_id": company["id"],
        "emails": ["Klaus.Mueller@Kunde-GmbH.example", "k.mueller@kunde-gmbh.EXAMPLE",
                   "klaus.mueller@kunde-gmbh.example"],
        "phones": ["0171/2345678", "anonymous"], "role": "customer", "category": "A",
        "tags": ["vip", "messe", "vip"], "fields": {"kundennummer": "K-1001", "umsatz": 1200, "aktiv": True}})
    assert response.status_code == 201, response.json
    body = response.json
    assert response.headers["Location"].endswith(f"{API}/contacts/{body['id']}")
    assert body["name"] == "Klaus Müller"
    assert body["company_id"] == company["id"]
    assert body["emails"] == ["klaus.mueller@kunde-gmbh.example", "k.mueller@kunde-gmbh.example"]
    assert body["phones"] == [{"raw": "0171/2345678", "e164": "+491712345678"},
                              {"raw": "anonymous", "e164": None}]
    assert body["role"] == "customer"
    assert body["category"] == "A"
    assert sorted(body["tags"]) == ["messe", "vip"]
    assert body["fields"] == {"kundennummer": "K-1001", "umsatz": 1200, "aktiv": True}
    assert body["origin"] == "api"

    fetched = client.get(response.headers["Location"], headers=auth)
    assert fetched.status_code == 200
    assert fetched.json == body


def test_create_contact_with_nothing_but_a_name(client, auth):
    body = create_contact(client, auth, name="Nur Name")
    assert (body["emails"], body["phones"], body["role"], body["category"], body["tags"], body["fields"]) == (
        [], [], "lead", None, [], {})


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "A", "emails": ["kein-at-zeichen"]}, "emails"),
    ({"name": "A", "emails": ["a@b@c.example"]}, "emails"),
    ({"name": "A", "role": "boss"}, "role"),
    ({"name": "A", "category": "Z"}, "category"),
    ({"name": "A", "company_id": 999_999}, "company_id"),
    ({"name": "A", "company_id": "1"}, "company_id"),
    ({"name": "A", "nmae": "Tippfehler"}, "nmae"),
    ({"name": "A", "tags": "vip"}, "tags"),
    ({"name": "A", "fields": {"x": {"nested": 1}}}, "fields.x"),
])
def test_create_contact_rejects_bad_fields(client, auth, body, field):
    error = assert_error(client.post(f"{API}/contacts", json=body, headers=auth), 400, field)
    assert error["code"] == "invalid"
    assert client.get(f"{API}/contacts", headers=auth).json["items"] == []


@pytest.mark.parametrize("kwargs", [
    {"json": ["name", "Klaus"]},
    {"json": "Klaus"},
    {"data": "name=Klaus", "content_type": "application/x-www-form-urlencoded"},
    {"data": "{not json", "content_type": "application/json"},
    {"data": b"\xff\xfe", "content_type": "application/json"},
])
def test_create_contact_needs_a_json_object(client, auth, kwargs):
    error = assert_error(client.post(f"{API}/contacts", headers=auth, **kwargs), 400, "body")
    assert "JSON object" in error["message"]
    assert client.get(f"{API}/contacts", headers=auth).json["items"] == []


def test_find_contacts_by_email_phone_and_name(client, auth):
    klaus = create_contact(client, auth, name="Klaus Müller",
                           emails=["klaus@kunde-gmbh.example", "Privat.Klaus@Mail.example"], phones=["0171/2345678"])
    erika = create_contact(client, auth, name="Erika Mustermann", emails=["erika@muster.example"],
                           phones=["+49 30 1234567"])

    def found(**query: str) -> list[int]:
        response = client.get(f"{API}/contacts", query_string=query, headers=auth)
        assert response.status_code == 200, response.json
        return [c["id"] for c in response.json["items"]]

    assert found(email="KLAUS@Kunde-GmbH.example") == [klaus["id"]]
    assert found(email="privat.klaus@mail.example") == [klaus["id"]]
    assert found(email=" <Erika@Muster.Example> ") == [erika["id"]]
    assert found(email="niemand@muster.example") == []
    assert found(phone="+49 171 2345678") == [klaus["id"]]
    assert found(phone="0049 171 234 56 78") == [klaus["id"]]
    assert found(phone="030/1234567") == [erika["id"]]
    assert found(phone="0171 9999999") == []
    assert found(q="müll") == [klaus["id"]]
    assert found(q="MUSTER") == [erika["id"]]
    assert found(q="a") == [klaus["id"], erika["id"]]
    assert found(q="Schmidt") == []
    assert found(q="müll", email="erika@muster.example") == []
    assert_error(client.get(f"{API}/contacts", query_string={"phone": "keine Nummer"}, headers=auth), 400, "phone")
    assert_error(client.get(f"{API}/contacts", query_string={"limit": "0"}, headers=auth), 400, "limit")
    assert_error(client.get(f"{API}/contacts", query_string={"limit": "viele"}, headers=auth), 400, "limit")


@pytest.mark.parametrize(("path", "body", "field"), [
    ("contacts", {"name": "A", "company_id": 2**64}, "company_id"),
    ("contacts", {"name": "A", "owner_id": 2**64}, "owner_id"),
    ("contacts", {"name": "A", "owner_id": True}, "owner_id"),
    ("contacts", {"name": "A", "phones": ["1" * 150]}, "phones"),
    ("companies", {"name": "A", "domains": ["a" * 300 + ".example"]}, "domains"),
])
def test_out_of_range_input_is_400(client, auth, path, body, field):
    assert_error(client.post(f"{API}/{path}", json=body, headers=auth), 400, field)


def test_name_search_ignores_case_of_umlauts(client, auth):
    oz = create_contact(client, auth, name="Özlem Ünal")
    for q in ("özlem", "ÖZLEM", "ünal"):
        assert [c["id"] for c in client.get(f"{API}/contacts", query_string={"q": q}, headers=auth).json["items"]] == [
            oz["id"]], q


@pytest.mark.parametrize("ident", [999_999, 2**31, 2**63, 10**30])
def test_unknown_ids_are_404(client, auth, ident):
    create_contact(client, auth, name="Jemand")
    for path in (f"contacts/{ident}", f"contacts/{ident}/timeline", f"companies/{ident}",
                 f"interactions/{ident}", f"attachments/{ident}"):
        assert_error(client.get(f"{API}/{path}", headers=auth), 404)
    for path in (f"contacts/{ident}", f"companies/{ident}"):
        assert_error(client.patch(f"{API}/{path}", json={"name": "X"}, headers=auth), 404)
    assert_error(client.post(f"{API}/inbound/{ident}/retry", headers=auth), 404)


def test_find_contacts_of_a_company(client, auth):
    kunde = create_company(client, auth, name="Kunde GmbH")
    klaus = create_contact(client, auth, name="Klaus", company_id=kunde["id"])
    create_contact(client, auth, name="Erika")
    url = f"{API}/contacts"
    assert [c["id"] for c in client.get(url, query_string={"company_id": kunde["id"]}, headers=auth).json["items"]] == [
        klaus["id"]]
    assert client.get(url, query_string={"company_id": 999_999}, headers=auth).json["items"] == []
    for bad in ("abc", "0", "-1", "²", str(2**64)):
        assert_error(client.get(url, query_string={"company_id": bad}, headers=auth), 400, "company_id")


def test_patch_contact_changes_only_what_was_sent_and_is_audited(client, factory, auth):
    created = create_contact(client, auth, name="Klaus Müller", emails=["klaus@kunde-gmbh.example"],
                             phones=["0171/2345678"], role="prospect", category="B", tags=["messe"],
                             fields={"kundennummer": "K-1"})
    response = client.patch(f"{API}/contacts/{created['id']}", json={"role": "customer"}, headers=auth)
    assert response.status_code == 200, response.json
    changed = response.json
    assert changed["role"] == "customer"
    unchanged = {k: v for k, v in created.items() if k not in {"role", "updated_at"}}
    assert {k: v for k, v in changed.items() if k not in {"role", "updated_at"}} == unchanged
    assert client.get(f"{API}/contacts/{created['id']}", headers=auth).json == changed

    with factory() as session:
        staff = find_staff(session, "anna.schmidt@beispiel-firma.de")
        assert staff is not None
        entries = session.execute(
            select(AuditEntry).where(AuditEntry.object_type == "contact", AuditEntry.object_id == created["id"])
            .order_by(AuditEntry.id)).scalars().all()
    assert [(e.action, e.staff_id) for e in entries] == [("create", staff.id), ("update", staff.id)]
    assert entries[1].details == {"role": "customer"}


def test_failed_patch_changes_nothing(client, factory, auth):
    created = create_contact(client, auth, name="Klaus Müller", role="prospect")
    assert_error(client.patch(f"{API}/contacts/{created['id']}", json={"name": "Neu", "role": "boss"},
                              headers=auth), 400, "role")
    assert_error(client.patch(f"{API}/contacts/{created['id']}", json=["name"], headers=auth), 400)
    assert client.get(f"{API}/contacts/{created['id']}", headers=auth).json == created
    with factory() as session:
        actions = session.execute(select(AuditEntry.action).where(AuditEntry.object_id == created["id"])).all()
    assert [a for (a,) in actions] == ["create"]


# --- companies ---

def test_companies_domains_phones_conflicts_and_patch(client, auth):
    kunde = create_company(client, auth, name="Kunde GmbH", domains=["Kunde-GmbH.example", "@kunde.example"],
                           phones=["030 1234567"], customer_type="B2B")
    assert kunde["domains"] == ["kunde-gmbh.example", "kunde.example"]
    assert kunde["phones"] == [{"raw": "030 1234567", "e164": "+49301234567"}]
    assert kunde["customer_type"] == "B2B"
    other = create_company(client, auth, name="Andere AG", domains=["andere.example"])

    error = assert_error(client.post(f"{API}/companies", json={"name": "Dublette", "domains": ["KUNDE.example"]},
                                     headers=auth), 409)
    assert "kunde.example" in error["message"]
    assert_error(client.patch(f"{API}/companies/{other['id']}", json={"domains": ["andere.example", "kunde.example"]},
                              headers=auth), 409)
    assert client.get(f"{API}/companies/{other['id']}", headers=auth).json["domains"] == ["andere.example"]
    assert_error(client.post(f"{API}/companies", json={"domains": ["neu.example"]}, headers=auth), 400, "name")
    assert_error(client.post(f"{API}/companies", json={"name": "X", "domains": ["kein domain"]}, headers=auth),
                 400, "domains")
    names = [c["name"] for c in client.get(f"{API}/companies", headers=auth).json["items"]]
    assert names == ["Kunde GmbH", "Andere AG"]

    def found(**query: str) -> list[int]:
        response = client.get(f"{API}/companies", query_string=query, headers=auth)
        assert response.status_code == 200, response.json
        return [c["id"] for c in response.json["items"]]

    assert found(domain="KUNDE.example") == [kunde["id"]]
    assert found(domain="andere.example") == [other["id"]]
    assert found(domain="unbekannt.example") == []
    assert found(phone="+49 30 1234567") == [kunde["id"]]

    # Keeping its own domain is no conflict; only what was sent changes.
    response = client.patch(f"{API}/companies/{kunde['id']}", headers=auth,
                            json={"name": "Kunde GmbH & Co. KG", "domains": ["kunde.example"]})
    assert response.status_code == 200, response.json
    assert response.json["name"] == "Kunde GmbH & Co. KG"
    assert response.json["domains"] == ["kunde.example"]
    assert response.json["phones"] == kunde["phones"]
    assert response.json["customer_type"] == "B2B"
    # The domain it gave up is free for another company now.
    assert client.patch(f"{API}/companies/{other['id']}", json={"domains": ["kunde-gmbh.example"]},
                        headers=auth).status_code == 200
    assert found(domain="kunde-gmbh.example") == [other["id"]]
    assert_error(client.get(f"{API}/companies/999999", headers=auth), 404)
    assert_error(client.patch(f"{API}/companies/999999", json={"name": "X"}, headers=auth), 404)


# --- timeline, interactions, attachments ---

def test_timeline_from_real_mail_newest_first_with_paging(client, factory, settings, auth):
    # Mails 2 and 3 share one timestamp: paging must still return each exactly once.
    times = [BASE_TIME, BASE_TIME + timedelta(hours=1), BASE_TIME + timedelta(hours=1),
             BASE_TIME + timedelta(days=1), BASE_TIME + timedelta(days=2)]
    outcomes = [ingest(factory, settings, customer_mail(f"Anfrage {n}", when).as_bytes())
                for n, when in enumerate(times, start=1)]
    assert [o.state for o in outcomes] == [InboundState.PROCESSED] * 5
    contact_id = contact_id_for(client, auth, CUSTOMER)

    full = client.get(f"{API}/contacts/{contact_id}/timeline", headers=auth)
    assert full.status_code == 200
    assert full.json["next_cursor"] is None
    items = full.json["items"]
    assert [i["subject"] for i in items] == ["Anfrage 5", "Anfrage 4", "Anfrage 3", "Anfrage 2", "Anfrage 1"]
    newest = items[0]
    assert newest["id"] == outcomes[4].interaction_id
    assert newest["kind"] == "email"
    assert newest["direction"] == "in"
    assert datetime.fromisoformat(newest["occurred_at"]) == times[4]
    assert newest["excerpt"] == "Guten Tag, bitte um ein Angebot."
    assert newest["message_id"] == customer_mail("Anfrage 5", times[4])["Message-ID"]
    assert newest["contact_ids"] == [contact_id]
    assert newest["attachments"] == []

    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        query: dict[str, Any] = {"limit": 2}
        if cursor:
            query["cursor"] = cursor
        page = client.get(f"{API}/contacts/{contact_id}/timeline", query_string=query, headers=auth)
        assert page.status_code == 200, page.json
        pages += 1
        assert len(page.json["items"]) <= 2
        seen += [i["id"] for i in page.json["items"]]
        cursor = page.json["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert pages == 3
    assert seen == [i["id"] for i in items]

    calls = client.get(f"{API}/contacts/{contact_id}/timeline", query_string={"kind": "call"}, headers=auth)
    assert calls.status_code == 200
    assert calls.json == {"items": [], "next_cursor": None}
    mails = client.get(f"{API}/contacts/{contact_id}/timeline", query_string={"kind": "email", "limit": 1},
                       headers=auth)
    assert [i["id"] for i in mails.json["items"]] == [items[0]["id"]]
    assert mails.json["next_cursor"]
    assert_error(client.get(f"{API}/contacts/{contact_id}/timeline", query_string={"kind": "fax"}, headers=auth),
                 400, "kind")
    assert_error(client.get(f"{API}/contacts/999999/timeline", headers=auth), 404)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize("cursor", [
    "garbage", "!!!", _b64("gestern|7"), _b64("2024-03-04T09:00:00+00:00|sieben"),
    _b64("2024-03-04T09:00:00|7"),  # no time zone
    _b64("2024-03-04T09:00:00+00:00|" + "9" * 30),  # an id no database column can hold
    _b64("0001-01-01T00:00:00+14:00|1"),  # before year 1 in UTC
    _b64("2024-03-04T09:00:00+00:00|0"),
    base64.urlsafe_b64encode(b"\xff\xfe|1").decode(),
])
def test_bad_cursor_is_400(client, factory, settings, auth, cursor):
    ingest(factory, settings, customer_mail("Anfrage", BASE_TIME).as_bytes())
    contact_id = contact_id_for(client, auth, CUSTOMER)
    assert_error(client.get(f"{API}/contacts/{contact_id}/timeline", query_string={"cursor": cursor},
                            headers=auth), 400, "cursor")


def mail_with_html_and_attachment() -> bytes:
    msg = customer_mail("Angebot mit Anhang", BASE_TIME, body="Hallo,\nanbei die Unterlagen.\n")
    msg.add_alternative('<p>Hallo <b>Welt</b></p><script>alert("xss")</script>'
                        '<a href="javascript:alert(1)" onclick="steal()">Link</a>', subtype="html")
    msg.add_attachment(b"root:x:0:0:root:/root:/bin/bash\n", maintype="application", subtype="octet-stream",
                       filename="../../etc/passwd")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="Angebot Nr. 7.pdf")
    return msg.as_bytes()


def test_interaction_full_text_sanitised_html_and_attachments(client, factory, settings, auth):
    outcome = ingest(factory, settings, mail_with_html_and_attachment())
    assert outcome.state == InboundState.PROCESSED and outcome.interaction_id
    contact_id = contact_id_for(client, auth, CUSTOMER)

    response = client.get(f"{API}/interactions/{outcome.interaction_id}", headers=auth)
    assert response.status_code == 200
    body = response.json
    assert body["subject"] == "Angebot mit Anhang"
    assert body["text"].strip() == "Hallo,\nanbei die Unterlagen."
    assert "<b>Welt</b>" in body["html"]
    assert "<script" not in body["html"].lower()
    assert "alert" not in body["html"]
    assert "javascript:" not in body["html"]
    assert "onclick" not in body["html"]
    assert body["contact_ids"] == [contact_id]
    assert [a["filename"] for a in body["attachments"]] == ["passwd", "Angebot Nr. 7.pdf"]

    timeline = client.get(f"{API}/contacts/{contact_id}/timeline", headers=auth).json["items"]
    assert timeline[0]["attachments"] == body["attachments"]

    passwd, pdf = body["attachments"]
    download = client.get(passwd["url"], headers=auth)
    assert download.status_code == 200
    assert download.data == b"root:x:0:0:root:/root:/bin/bash\n"
    assert download.headers["Content-Disposition"] == 'attachment; filename="passwd"'
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.mimetype == "application/octet-stream"
    assert passwd["size"] == len(download.data)
    assert passwd["sha256"] == hashlib.sha256(download.data).hexdigest()

    download = client.get(pdf["url"], headers=auth)
    assert download.data == b"%PDF-1.4 fake"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert "Angebot" in download.headers["Content-Disposition"]

    assert_error(client.get(passwd["url"]), 401)
    assert_error(client.get(f"{API}/attachments/999999", headers=auth), 404)
    assert_error(client.get(f"{API}/interactions/999999", headers=auth), 404)


# --- inbound triage ---

def deeply_nested(depth: int) -> bytes:
    part: Any = MIMEText("ganz innen", "plain", "utf-8")
    for _ in range(depth):
        outer = MIMEMultipart("mixed")
        outer.attach(part)
        part = outer
    part["From"] = f"Karl Kunde <{CUSTOMER}>"
    part["To"] = CRM
    part["Subject"] = "Verschachtelt"
    part["Message-ID"] = "<deep@kunde-gmbh.example>"
    return bytes(part.as_bytes())


@pytest.mark.parametrize(("raw", "reason"), [
    (deeply_nested(30), "nested deeper than"),
    (b"", "empty"),
])
def test_failed_inbound_is_listed_and_retry_keeps_the_reason(client, factory, settings, auth, raw, reason):
    failed = ingest(factory, settings, raw)
    assert failed.state == InboundState.FAILED
    ok = ingest(factory, settings, customer_mail("Normal", BASE_TIME).as_bytes())
    assert ok.state == InboundState.PROCESSED

    listed = client.get(f"{API}/inbound", query_string={"state": "failed"}, headers=auth)
    assert listed.status_code == 200
    assert [(m["id"], m["state"]) for m in listed.json["items"]] == [(failed.inbound_id, "failed")]
    assert reason in listed.json["items"][0]["error"]
    everything = client.get(f"{API}/inbound", headers=auth).json["items"]
    assert [m["id"] for m in everything] == [ok.inbound_id, failed.inbound_id]

    retried = client.post(f"{API}/inbound/{failed.inbound_id}/retry", headers=auth)
    assert retried.status_code == 200, retried.json
    assert retried.json["id"] == failed.inbound_id
    assert retried.json["state"] == "failed"
    assert reason in retried.json["error"]
    assert retried.json["interaction_id"] is None
    listed = client.get(f"{API}/inbound", query_string={"state": "failed"}, headers=auth).json["items"]
    assert [(m["id"], m["state"]) for m in listed] == [(failed.inbound_id, "failed")]

    error = assert_error(client.post(f"{API}/inbound/{ok.inbound_id}/retry", headers=auth), 409)
    assert "processed" in error["message"]
    assert_error(client.post(f"{API}/inbound/999999/retry", headers=auth), 404)
    assert_error(client.get(f"{API}/inbound", query_string={"state": "kaputt"}, headers=auth), 400, "state")
    ro = {"Authorization": f"Bearer {make_token(factory, 'ro@beispiel-firma.de', role='readonly')}"}
    assert_error(client.post(f"{API}/inbound/{failed.inbound_id}/retry", headers=ro), 403)


def test_failed_attempts_are_counted(client, factory, settings, auth):
    failed = ingest(factory, settings, b"")
    assert failed.state == InboundState.FAILED
    assert client.post(f"{API}/inbound/{failed.inbound_id}/retry", headers=auth).status_code == 200
    listed = client.get(f"{API}/inbound", query_string={"state": "failed"}, headers=auth).json["items"]
    assert [(m["id"], m["attempts"]) for m in listed] == [(failed.inbound_id, 2)]


def test_retry_uses_the_configured_limits(factory, settings, tmp_path):
    """A message that failed under a strict limit is processed on retry once the limit allows it."""
    from web import create_app

    strict = make_settings(settings.database.url, tmp_path / "strict", mail={
        "crm_addresses": (CRM,), "staff_domains": ("beispiel-firma.de",), "max_nesting_depth": 2})
    failed = ingest(factory, strict, deeply_nested(4))
    assert failed.state == InboundState.FAILED

    token = make_token(factory, "anna.schmidt@beispiel-firma.de")
    headers = {"Authorization": f"Bearer {token}"}
    strict_client = create_app(strict, factory).test_client()
    again = strict_client.post(f"{API}/inbound/{failed.inbound_id}/retry", headers=headers)
    assert again.status_code == 200
    assert again.json["state"] == "failed"
    assert "nested deeper than 2" in again.json["error"]

    relaxed_client = create_app(settings, factory).test_client()
    done = relaxed_client.post(f"{API}/inbound/{failed.inbound_id}/retry", headers=headers)
    assert done.status_code == 200
    assert done.json["state"] == "processed"
    assert done.json["error"] is None
    assert done.json["interaction_id"]


# --- limits ---

def test_request_over_the_size_limit_is_413_json(app, client, auth):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    assert client.post(f"{API}/contacts", json={"name": "Klein"}, headers=auth).status_code == 201
    error = assert_error(client.post(f"{API}/contacts", json={"name": "Groß", "fields": {"notiz": "x" * 5000}},
                                     headers=auth), 413)
    assert error["code"] == "request_entity_too_large"
    assert [c["name"] for c in client.get(f"{API}/contacts", headers=auth).json["items"]] == ["Klein"]


# --- OpenAPI ---

def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_document_lists_every_route(app, client):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    doc = response.json
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]

    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(f"{API}/") or rule.rule == f"{API}/openapi.json":
            continue
        path = re.sub(r"<(?:[^<>:]+:)?token>", "{token}", rule.rule[len(API):])
        path = re.sub(r"<(?:[^<>:]+:)?[^<>]+>", "{id}", path)
        routes.setdefault(path, set()).update(m.lower() for m in rule.methods or () if m not in {"HEAD", "OPTIONS"})
    assert len(routes) >= 9
    for path, methods in routes.items():
        assert path in paths, f"{path} is missing from openapi.json"
        documented = {m for m in paths[path] if m in {"get", "post", "put", "patch", "delete"}}
        assert documented == methods, path
    assert set(paths) == set(routes), "openapi.json documents routes that do not exist"

    for ref in _refs(doc):
        section, name = ref.removeprefix("#/components/").split("/")
        assert name in doc["components"][section], ref
