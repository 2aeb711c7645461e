"""The campaign pages and API as staff use them: a campaign made in the form (a wrong placeholder is an error on
the form, never a 500), the preview as a chosen person gets it and who is left out why, a test mail at a real SMTP
sink, start above the approval threshold → an admin approves, the figures and the responders after a real reply,
one click makes an opportunity, the letters' PDF; the JSON API's CRUD, its 4xx and the admin-only approval."""

from __future__ import annotations

import email
import email.policy
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox import outbox
from crm_inbox.campaigns import sending
from crm_inbox.config import Settings
from crm_inbox.consent import ledger
from crm_inbox.db import unit_of_work
from crm_inbox.models import (
    Campaign,
    CampaignRecipient,
    CampaignState,
    Category,
    Channel,
    ConsentState,
    Contact,
    ContactEmail,
    Interaction,
    LegalBasis,
    Opportunity,
    RecipientState,
    Role,
    Salutation,
)
from crm_inbox.segments import service as segments
from crm_inbox.staff.service import add_staff, create_token
from tests.conftest import make_settings
from tests.test_pages import csrf_token, deliver, log_in

STAFF = "jonas.becker@beispiel-firma.de"
ADMIN = "anna.admin@beispiel-firma.de"
PASSWORD = "richtig-geheim-42"
BODY = "{{ greeting }}\n\nunser Frühjahrsangebot für {{ company or name }}.\n\nViele Grüße\n{{ owner }}"


@dataclass
class Sink:
    """The company's relay, standing in: keeps every message with its envelope recipients."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 2.0.0 Ok"


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    from handlers.smtp import SmtpServer

    handler = Sink()
    server = SmtpServer(handler, "127.0.0.1", 0, max_message_bytes=5_000_000)  # type: ignore[arg-type]
    port = server.start()
    yield handler, port
    server.stop()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, sink: tuple[Sink, int]) -> Settings:
    return make_settings(database_url, tmp_path / "instance", web={"base_url": "https://crm.beispiel-firma.de"},
                         campaigns={"approval_threshold": 10, "per_minute": 600},
                         notifications={"smtp_host": "127.0.0.1", "smtp_port": sink[1], "timeout_seconds": 5,
                                        "from_address": "crm@beispiel-firma.de"})


def _person(session: Session, name: str, address: str, *, salutation: Salutation, title: str | None = None,
            bouncing: bool = False, consent: ConsentState | None = ConsentState.OPTED_IN) -> int:
    contact = Contact(name=name, salutation=salutation, title=title, role=Role.CUSTOMER, category=Category.A,
                      street="Leopoldstraße 1", postcode="80802", city="München", country="DE", language="de",
                      tags=[], fields={})
    contact.emails = [ContactEmail(email=address, bouncing=bouncing)]
    session.add(contact)
    session.flush()
    if consent is not None:
        ledger.record(session, contact.id, Channel.EMAIL, consent,
                      LegalBasis.CONSENT if consent == ConsentState.OPTED_IN else None, "web_form")
    return contact.id


@pytest.fixture
def world(factory: sessionmaker[Session]) -> dict[str, int]:
    """Staff Jonas, admin Anna, and four people in Munich (category A): Dr. Klara Müller and Paul Berger opted
    in, Bernd opted out, Carla's address bounces (opted in), Dieter was never asked."""
    with unit_of_work(factory) as session:
        jonas = add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        anna = add_staff(session, ADMIN, "Anna Admin", "admin", password=PASSWORD)
        ids = {"staff": jonas.id, "admin": anna.id,
               "staff_token": create_token(session, jonas, "t"), "admin_token": create_token(session, anna, "t")}
        ids["klara"] = _person(session, "Klara Müller", "klara@mueller-technik.example", salutation=Salutation.FRAU,
                               title="Dr.")
        ids["paul"] = _person(session, "Paul Berger", "paul@berger.example", salutation=Salutation.HERR)
        _person(session, "Bernd Aus", "bernd@aus.example", salutation=Salutation.HERR,
                consent=ConsentState.OPTED_OUT)
        _person(session, "Carla Prall", "carla@prall.example", salutation=Salutation.FRAU, bouncing=True)
        _person(session, "Dieter Nie", "dieter@nie.example", salutation=Salutation.HERR, consent=None)
        ids["segment"] = segments.create(session, "München A", {"all": [
            {"field": "city", "op": "is", "value": "München"}, {"field": "category", "op": "is", "value": "A"}]},
            actor=jonas.id).id
        return ids  # type: ignore[return-value]


def new_campaign(client: Any, world: dict[str, Any], channel: str = "email", name: str = "Frühjahr") -> int:
    token = csrf_token(client.get("/campaigns/new").get_data(as_text=True))
    response = client.post("/campaigns/new", data={
        "csrf_token": token, "name": name, "segment_id": world["segment"], "channel": channel,
        "sender_name": "Jonas Becker", "subject": "{{ company or name }}: Frühjahrsangebot", "body": BODY})
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rsplit("/", 1)[1])


def post(client: Any, url: str, **data: Any) -> Any:
    token = csrf_token(client.get("/campaigns").get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **data})


def test_a_campaign_made_in_the_form_previews_as_each_person_gets_it(client: Any, world: dict[str, Any]) -> None:
    log_in(client, STAFF, PASSWORD)
    form = client.get("/campaigns/new").get_data(as_text=True)
    assert "{{ greeting }}" in form and "München A" in form  # the placeholder help and the segments

    campaign_id = new_campaign(client, world)
    page = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert "Frühjahr" in page and "draft" in page
    # Who is reached and who is left out why, in words
    assert "2 recipients" in page
    assert re.search(r"left out:.*1 opted out", page, re.S) and "1 bouncing" in page and "1 no consent" in page
    assert "the e-mail address bounces" in page
    # The first recipient's mail: subject, text with the salutation line, the HTML in a sandboxed frame
    assert "Sehr geehrte" in page
    assert '<iframe sandbox class="mailhtml preview-html"' in page and "srcdoc=" in page
    # A chosen person: her greeting, her name in the subject
    klara = client.get(f"/campaigns/{campaign_id}/preview", query_string={"contact_id": world["klara"]})
    text = klara.get_data(as_text=True)
    assert "Sehr geehrte Frau Dr. Müller," in text and "Klara Müller: Frühjahrsangebot" in text
    assert "https://crm.beispiel-firma.de/unsubscribe/" in text  # the opt-out link under every mail
    paul = client.get(f"/campaigns/{campaign_id}", query_string={"contact_id": world["paul"]}).get_data(as_text=True)
    assert "Sehr geehrter Herr Berger," in paul
    # Found by name among the segment's people, for the picker
    found = client.get(f"/campaigns/{campaign_id}/recipients", query_string={"q": "müll"}).get_json()
    assert found["items"] == [{"id": world["klara"], "name": "Klara Müller"}]

    listing = client.get("/campaigns").get_data(as_text=True)
    assert "Frühjahr" in listing and "e-mail" in listing


def test_a_wrong_placeholder_or_missing_segment_is_shown_on_the_form(client: Any, world: dict[str, Any]) -> None:
    log_in(client, STAFF, PASSWORD)
    token = csrf_token(client.get("/campaigns/new").get_data(as_text=True))
    base = {"csrf_token": token, "name": "Kaputt", "segment_id": world["segment"], "channel": "email",
            "subject": "Hallo", "body": "{{ grusswort }}"}
    response = client.post("/campaigns/new", data=base)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Not saved" in page and "grusswort" in page
    assert "{{ grusswort }}" in page  # what was typed is kept
    for wrong in ({"segment_id": ""}, {"segment_id": "99999"}, {"segment_id": "x"}, {"channel": "fax"},
                  {"body": "{% for x in y %}{% endfor %}"}, {"name": ""}):
        response = client.post("/campaigns/new", data={**base, "body": BODY, **wrong})
        assert response.status_code == 400, wrong
        assert "Not saved" in response.get_data(as_text=True)
    assert client.get("/campaigns/99999").status_code == 404


def test_the_test_mail_reaches_the_staff_users_own_address(client: Any, world: dict[str, Any],
                                                           factory: sessionmaker[Session], settings: Settings,
                                                           sink: tuple[Sink, int]) -> None:
    log_in(client, STAFF, PASSWORD)
    campaign_id = new_campaign(client, world)
    response = post(client, f"/campaigns/{campaign_id}/test")
    assert response.status_code == 302
    assert f"Test mail sent to {STAFF}" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert outbox.send_pending(factory, settings)["sent"] == 1
    (rcpt, msg), = sink[0].messages
    assert rcpt == [STAFF]
    assert msg["Subject"].startswith("[Test] ")
    assert "Sehr geehrte" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert msg.get_body(("html",)) is not None
    with factory() as session:  # on nobody's timeline, in nobody's ledger
        assert session.scalar(select(CampaignRecipient.id)) is None
        assert session.scalar(select(Interaction.id)) is None


def test_staff_start_above_the_threshold_waits_for_an_admin_then_replies_become_deals(
        app: Any, world: dict[str, Any], factory: sessionmaker[Session], settings: Settings) -> None:
    settings = replace_threshold(settings, 1)
    app.extensions["crm_inbox"].settings = settings
    jonas, anna = app.test_client(), app.test_client()
    log_in(jonas, STAFF, PASSWORD)
    log_in(anna, ADMIN, PASSWORD)
    campaign_id = new_campaign(jonas, world)
    response = post(jonas, f"/campaigns/{campaign_id}/start", confirm="yes")
    assert response.status_code == 302
    page = jonas.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert "awaits approval by an admin" in page and "Approve and send" not in page
    assert post(jonas, f"/campaigns/{campaign_id}/approve").status_code == 403

    assert "Approve and send" in anna.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert post(anna, f"/campaigns/{campaign_id}/approve").status_code == 302
    with factory() as session:
        assert session.get_one(Campaign, campaign_id).state == CampaignState.SENDING
    assert sending.release_due(factory, settings) >= 1
    sending.release_due(factory, settings, now=later(3600))
    with factory() as session:
        klara = session.execute(select(CampaignRecipient).where(
            CampaignRecipient.contact_id == world["klara"])).scalar_one()
        assert klara.state == RecipientState.RELEASED and klara.message_id
        message_id = klara.message_id

    # Klara answers the campaign mail: the reply is linked, counted and listed
    reply = EmailMessage()
    reply["From"] = "Klara Müller <klara@mueller-technik.example>"
    reply["To"] = settings.mail.crm_addresses[0]
    reply["Subject"] = "Re: Klara Müller: Frühjahrsangebot"
    reply["Message-ID"] = "<antwort-1@mueller-technik.example>"
    reply["In-Reply-To"] = message_id
    reply.set_content("Guten Tag,\n\nbitte schicken Sie mir ein Angebot für zwei Maschinen.\n\nKlara Müller\n")
    reply_id = deliver(factory, settings, reply)

    page = jonas.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert "Responders" in page and "Re: Klara Müller: Frühjahrsangebot" in page
    assert "ein Angebot für zwei Maschinen" in page
    assert re.search(r"<dt>Replied</dt><dd>1</dd>", page)
    # The reply on Klara's timeline names the campaign; the campaign mail itself is one collapsed line
    timeline = jonas.get(f"/contacts/{world['klara']}").get_data(as_text=True)
    assert "Reply to campaign “Frühjahr”" in timeline
    assert re.search(r'<li class="item kind-email campaign-mail".*?<details class="campaign">', timeline, re.S)
    assert "Campaign “Frühjahr” sent" in timeline

    with factory() as session:
        recipient_id = session.execute(select(CampaignRecipient.id).where(
            CampaignRecipient.reply_interaction_id == reply_id)).scalar_one()
    # the recipient under another campaign's address: not found there, no deal
    other = new_campaign(jonas, world, name="Andere")
    wrong = post(jonas, f"/campaigns/{other}/responders/{recipient_id}/qualify")
    assert wrong.status_code == 302 and wrong.headers["Location"].endswith(f"/campaigns/{other}#responders")
    assert f"campaign {other} has no recipient {recipient_id}" in jonas.get(wrong.headers["Location"]).get_data(
        as_text=True)
    with factory() as session:
        assert session.execute(select(Opportunity)).first() is None
    response = post(jonas, f"/campaigns/{campaign_id}/responders/{recipient_id}/qualify")
    assert response.status_code == 302 and "/opportunities/" in response.headers["Location"]
    with factory() as session:
        opp = session.execute(select(Opportunity)).scalar_one()
        assert opp.contact_id == world["klara"] and opp.source.value == "campaign"
    page = jonas.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert "Create opportunity" not in page and re.search(r"<dt>Opportunities</dt><dd>1</dd>", page)
    again = post(jonas, f"/campaigns/{campaign_id}/responders/{recipient_id}/qualify")  # a second click: no second
    assert again.status_code == 302 and "/campaigns/" in again.headers["Location"]


def test_pause_resume_cancel_need_their_buttons_and_a_confirmation(app: Any, client: Any, world: dict[str, Any],
                                                                    factory: sessionmaker[Session]) -> None:
    woken: list[int] = []
    app.extensions["crm_inbox"].mail_queued = lambda: woken.append(1)
    log_in(client, STAFF, PASSWORD)
    campaign_id = new_campaign(client, world)
    draft = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert "Delete…" in draft and "Cancel campaign…" not in draft  # a draft is deleted, not cancelled
    post(client, f"/campaigns/{campaign_id}/start")  # no confirmation: nothing happens
    with factory() as session:
        assert session.get_one(Campaign, campaign_id).state == CampaignState.DRAFT
    post(client, f"/campaigns/{campaign_id}/start", confirm="yes")
    assert "Pause" in client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert len(woken) == 1  # the start woke the releaser
    post(client, f"/campaigns/{campaign_id}/pause")
    assert "Resume" in client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert len(woken) == 1
    post(client, f"/campaigns/{campaign_id}/resume")
    assert len(woken) == 2  # so does the resume: sending goes on at once, not at the next poll
    post(client, f"/campaigns/{campaign_id}/pause")
    post(client, f"/campaigns/{campaign_id}/cancel")
    with factory() as session:
        assert session.get_one(Campaign, campaign_id).state == CampaignState.PAUSED
    post(client, f"/campaigns/{campaign_id}/cancel", confirm="yes")
    page = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert "cancelled" in page and "Resume" not in page
    # a started campaign cannot be changed: the edit form sends back to the page
    assert client.get(f"/campaigns/{campaign_id}/edit").status_code == 302


def test_letters_pdf_and_merge_data_download(app: Any, client: Any, world: dict[str, Any],
                                             factory: sessionmaker[Session]) -> None:
    log_in(client, STAFF, PASSWORD)
    campaign_id = new_campaign(client, world, channel="letter", name="Brief")
    started = post(client, f"/campaigns/{campaign_id}/start", confirm="yes")
    page = client.get(started.headers["Location"]).get_data(as_text=True)
    assert "Campaign started." in page, re.findall(r'class="flash"[^>]*>([^<]*)', page)
    assert "Mail-merge PDF" in page and "Send a test to me" not in page
    response = post(client, f"/campaigns/{campaign_id}/letters.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    timeline = client.get(f"/contacts/{world['klara']}").get_data(as_text=True)
    assert "Campaign letter “Brief” printed" in timeline  # one collapsed line on her timeline
    merge = client.get(f"/campaigns/{campaign_id}/merge", query_string={"format": "csv"})
    assert merge.status_code == 200 and "Müller" in merge.data.decode("utf-8-sig")
    assert client.get(f"/campaigns/{campaign_id}/merge", query_string={"format": "xlsx"}).status_code == 200
    assert "not recorded on the timelines" in client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    # a read-only user sees the campaign but takes no data out and prints nothing
    with unit_of_work(factory) as session:
        add_staff(session, "leser@beispiel-firma.de", "Lea Leser", "readonly", password=PASSWORD)
    reader = app.test_client()
    log_in(reader, "leser@beispiel-firma.de", PASSWORD)
    page = reader.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert "Brief" in page and "Data for mail merge" not in page and "Mail-merge PDF" not in page
    assert reader.get(f"/campaigns/{campaign_id}/merge", query_string={"format": "csv"}).status_code == 403


def test_the_api_creates_changes_starts_and_refuses_what_it_must(app: Any, client: Any, world: dict[str, Any],
                                                                  settings: Settings) -> None:
    app.extensions["crm_inbox"].settings = replace_threshold(settings, 1)
    staff = {"Authorization": f"Bearer {world['staff_token']}"}
    admin = {"Authorization": f"Bearer {world['admin_token']}"}
    api = "/api/v1/campaigns"
    body = {"name": "API", "segment_id": world["segment"], "channel": "email", "subject": "Hallo {{ name }}",
            "body": BODY}
    made = client.post(api, json=body, headers=staff)
    assert made.status_code == 201, made.json
    cid = made.json["id"]
    assert made.headers["Location"].endswith(f"/campaigns/{cid}") and made.json["state"] == "draft"
    assert made.json["actions"] == ["delete", "edit", "start", "test"]
    assert client.get(f"{api}/{cid}", headers=staff).json["name"] == "API"
    assert [c["id"] for c in client.get(api, headers=staff).json["items"]] == [cid]
    assert client.patch(f"{api}/{cid}", json={"name": "API 2"}, headers=staff).json["name"] == "API 2"
    preview = client.post(f"{api}/{cid}/preview", json={"contact_id": world["klara"]}, headers=staff)
    assert preview.status_code == 200 and preview.json["subject"] == "Hallo Klara Müller"
    assert "Sehr geehrte Frau Dr. Müller," in preview.json["text"] and "<" in preview.json["html"]

    # 4xx, never 5xx
    for wrong in ({**body, "name": "X", "channel": "fax"}, {**body, "name": "X", "segment_id": 99999},
                  {**body, "name": "X", "segment_id": "1"}, {**body, "name": "X", "body": "{{ nix }}"},
                  {**body, "name": "X", "colour": "red"}, {"name": "X"}, {**body, "name": "X", "segment_id": 10**30},
                  {**body, "name": "X", "channel": ["email"]}, {**body, "name": 5},
                  {**body, "name": "X", "subject": 1}):
        assert client.post(api, json=wrong, headers=staff).status_code == 400, wrong
    assert client.post(api, json={**body, "name": "API 2"}, headers=staff).status_code in (400, 409)  # taken
    assert client.post(api, data="nope", headers=staff).status_code == 400
    assert client.get(f"{api}/99999", headers=staff).status_code == 404
    assert client.get(api, query_string={"state": "nix"}, headers=staff).status_code == 400
    assert client.post(f"{api}/{cid}/preview", json={"contact_id": "x"}, headers=staff).status_code == 400
    assert client.get(api).status_code == 401

    started = client.post(f"{api}/{cid}/start", headers=staff)
    assert started.status_code == 200 and started.json["state"] == "awaiting_approval"  # 2 recipients, more than 1
    assert client.post(f"{api}/{cid}/approve", headers=staff).status_code == 403
    approved = client.post(f"{api}/{cid}/approve", headers=admin)
    assert approved.status_code == 200 and approved.json["state"] == "sending"
    assert client.patch(f"{api}/{cid}", json={"name": "Zu spät"}, headers=staff).status_code == 409
    assert client.delete(f"{api}/{cid}", headers=staff).status_code == 409
    summary = client.get(f"{api}/{cid}/summary", headers=staff).json
    assert summary["recipients"] == 2 and summary["left_out"] == {"opted_out": 1, "bouncing": 1, "no_consent": 1}
    assert client.get(f"{api}/{cid}/responders", headers=staff).json == {"items": [], "more": False, "page": 1}
    assert client.post(f"{api}/{cid}/qualify", json={"recipient_id": 99999}, headers=staff).status_code == 404
    assert client.post(f"{api}/{cid}/pause", headers=staff).json["state"] == "paused"
    woken: list[int] = []
    app.extensions["crm_inbox"].mail_queued = lambda: woken.append(1)
    resumed = client.post(f"{api}/{cid}/resume", headers=staff).json
    assert resumed["state"] == "sending" and resumed["actions"] == ["cancel", "pause", "test"]
    assert woken == [1]  # the releaser goes on at once
    assert client.post(f"{api}/{cid}/cancel", headers=staff).json["state"] == "cancelled"
    assert client.delete(f"{api}/{cid}", headers=staff).status_code == 204
    assert client.get(f"{api}/{cid}", headers=staff).status_code == 404


def replace_threshold(settings: Settings, threshold: int) -> Settings:
    from crm_inbox.config import replace

    return replace(settings, campaigns={"approval_threshold": threshold})


def later(seconds: int) -> Any:
    from datetime import timedelta

    from crm_inbox.models import utcnow

    return utcnow() + timedelta(seconds=seconds)
