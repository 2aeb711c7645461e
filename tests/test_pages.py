"""The staff pages, as a person in a browser uses them: log in, find a contact, read a mail."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from sqlalchemy import select

from crm_inbox.calls.service import CallEvent, apply_event
from crm_inbox.db import unit_of_work
from crm_inbox.intake.store import Envelope, accept
from crm_inbox.models import Attachment, Contact, ContactEmail, ContactPhone, Direction, InteractionKind, Reminder
from crm_inbox.phone import to_e164
from crm_inbox.pipeline.runner import process
from crm_inbox.staff.service import add_staff

STAFF = "jonas.becker@beispiel-firma.de"
PASSWORD = "richtig-geheim-42"
CLAUS = "claus.juergens@mueller-maschinenbau.de"


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def log_in(client, email: str = STAFF, password: str = PASSWORD, next_url: str | None = None):  # type: ignore[no-untyped-def]
    page = client.get("/login" + (f"?next={next_url}" if next_url else ""))
    data = {"email": email, "password": password, "csrf_token": csrf_token(page.get_data(as_text=True))}
    if next_url:
        data["next"] = next_url
    return client.post("/login", data=data)


def deliver(factory, settings, msg: EmailMessage) -> int:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        envelope = Envelope(mail_from=msg["From"], rcpt_to=(settings.mail.crm_addresses[0],))
        inbound_id = accept(session, bytes(msg), envelope).inbound_id
    outcome = process(factory, settings, inbound_id)
    assert outcome.interaction_id is not None, outcome
    return outcome.interaction_id


@pytest.fixture
def staff(factory):  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)


@pytest.fixture
def claus(factory) -> int:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        contact = Contact(name="Claus Jürgens", tags=["Stammkunde"], fields={"Position": "Einkauf"})
        contact.emails = [ContactEmail(email=CLAUS)]
        contact.phones = [ContactPhone(raw="0171/2345678", e164=to_e164("0171/2345678"))]
        session.add(contact)
        other = Contact(name="Petra Köhler")
        other.emails = [ContactEmail(email="petra@web.de")]
        session.add(other)
        session.flush()
        return contact.id


@pytest.fixture
def mail_id(factory, settings, claus) -> int:  # type: ignore[no-untyped-def]
    msg = EmailMessage()
    msg["From"] = f"Claus Jürgens <{CLAUS}>"
    msg["To"] = f"Jonas Becker <{STAFF}>"
    msg["Subject"] = "Reklamation <script>alert(1)</script> Lieferung 4711"
    msg["Date"] = format_datetime(datetime(2025, 3, 4, 9, 30, tzinfo=UTC))
    msg["Message-ID"] = "<reklamation-4711@mueller-maschinenbau.de>"
    msg.set_content("Guten Tag,\n\n4 Sensoren sind defekt. <script>alert('text')</script>\n\nGruß\nClaus Jürgens")
    msg.add_alternative("<p>4 Sensoren sind <b>defekt</b>.</p><script>alert('html')</script>", subtype="html")
    msg.add_attachment(b"%PDF-1.4\nfake\n", maintype="application", subtype="pdf", filename="Prüfprotokoll.pdf")
    return deliver(factory, settings, msg)


def test_pages_need_a_login(client, staff):
    response = client.get("/contacts?q=Claus")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    for path in ("/", "/contacts/1", "/interactions/1", "/interactions/1/html", "/attachments/1", "/companies/1"):
        assert client.get(path).status_code == 302, path
    assert client.get("/healthz").get_data(as_text=True) == "ok"
    # after logging in, the person lands where they wanted to go
    login_page = client.get(response.headers["Location"])
    assert login_page.status_code == 200
    html = login_page.get_data(as_text=True)
    assert 'name="next" value="/contacts?q=Claus"' in html
    response = client.post("/login", data={"email": STAFF, "password": PASSWORD, "next": "/contacts?q=Claus",
                                           "csrf_token": csrf_token(html)})
    assert response.headers["Location"] == "/contacts?q=Claus"


def test_wrong_password_is_rejected(client, staff):
    response = log_in(client, password="falsch")
    assert response.status_code == 200
    assert "Wrong e-mail address or password" in response.get_data(as_text=True)
    assert log_in(client, email="nobody@beispiel-firma.de").status_code == 200
    assert client.get("/contacts").status_code == 302


def test_post_without_csrf_token_is_rejected(client, staff):
    client.get("/login")
    response = client.post("/login", data={"email": STAFF, "password": PASSWORD})
    assert response.status_code == 400
    response = client.post("/login", data={"email": STAFF, "password": PASSWORD, "csrf_token": "forged"})
    assert response.status_code == 400
    assert client.get("/contacts").status_code == 302  # still not logged in
    assert log_in(client).status_code == 302
    assert client.post("/logout").status_code == 400  # logged in, but no token: stays logged in
    assert client.get("/contacts").status_code == 200


def test_login_goes_to_the_page_asked_for_and_logout_ends_it(client, staff, claus):
    response = log_in(client, next_url=f"/contacts/{claus}")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/contacts/{claus}"
    page = client.get("/contacts").get_data(as_text=True)
    assert "Jonas Becker" in page  # who is logged in
    assert "Log out" in page

    response = client.post("/logout", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302
    assert client.get("/contacts").status_code == 302


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example",
                                    "/\t/evil.example"])
def test_login_never_redirects_to_another_site(client, staff, target):
    response = log_in(client, next_url=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"  # where a login lands without a (safe) next


def test_login_lands_on_the_dashboard(client, staff):
    response = log_in(client)
    assert response.headers["Location"] == "/dashboard"


def test_contact_list_and_search(client, staff, claus):
    log_in(client)
    page = client.get("/contacts").get_data(as_text=True)
    assert "Claus Jürgens" in page and "Petra Köhler" in page
    assert CLAUS in page

    page = client.get("/contacts", query_string={"q": "jürg"}).get_data(as_text=True)
    assert "Claus Jürgens" in page and "Petra Köhler" not in page

    page = client.get("/contacts", query_string={"q": "KÖHLER"}).get_data(as_text=True)  # any case, umlauts too
    assert "Petra Köhler" in page and "Claus Jürgens" not in page

    page = client.get("/contacts", query_string={"q": "petra@web"}).get_data(as_text=True)
    assert "Petra Köhler" in page and "Claus Jürgens" not in page

    # stored as "0171/2345678", found however it is typed
    for typed in ("+49 171 2345678", "0049 171 234 56 78", "(0171) 2345678"):
        page = client.get("/contacts", query_string={"q": typed}).get_data(as_text=True)
        assert "Claus Jürgens" in page and "Petra Köhler" not in page, typed

    for nothing in ("nobody here", "%", "_"):  # LIKE wildcards are plain characters
        page = client.get("/contacts", query_string={"q": nothing}).get_data(as_text=True)
        assert "No contacts match" in page and "Claus Jürgens" not in page, nothing


def test_contact_list_pages(client, staff, factory):
    with unit_of_work(factory) as session:
        session.add_all([Contact(name=f"Person {n:03d}") for n in range(60)])
    log_in(client)
    first = client.get("/contacts").get_data(as_text=True)
    assert "Person 000" in first and "Person 049" in first and "Person 050" not in first
    assert "Next" in first
    second = client.get("/contacts?page=2").get_data(as_text=True)
    assert "Person 050" in second and "Person 059" in second and "Person 000" not in second


def test_contact_page_shows_master_data_and_the_mail(client, staff, claus, mail_id):
    log_in(client)
    page = client.get(f"/contacts/{claus}").get_data(as_text=True)
    assert "Claus Jürgens" in page
    assert f'href="mailto:{CLAUS}"' in page
    assert 'href="tel:+491712345678"' in page
    assert "Stammkunde" in page and "Einkauf" in page
    assert "Reklamation &lt;script&gt;alert(1)&lt;/script&gt; Lieferung 4711" in page
    assert "4 Sensoren sind defekt." in page
    assert f'href="/interactions/{mail_id}"' in page
    assert "Prüfprotokoll.pdf" in page
    assert "<script>" not in page


def test_contact_timeline_pages_to_older_entries(client, staff, claus, factory):
    from crm_inbox.models import Direction
    from crm_inbox.timeline.service import record_interaction

    with unit_of_work(factory) as session:
        contact = session.get_one(Contact, claus)
        for day in range(1, 31):
            record_interaction(session, kind=InteractionKind.NOTE, direction=Direction.INTERNAL,
                               occurred_at=datetime(2025, 1, day, 12, tzinfo=UTC), subject=f"Notiz {day:02d}",
                               contacts=[(contact, "party")])
    log_in(client)
    page = client.get(f"/contacts/{claus}").get_data(as_text=True)
    assert "Notiz 30" in page and "Notiz 06" in page and "Notiz 05" not in page
    older = re.search(r'href="([^"]+cursor=[^"]+)"', page)
    assert older
    page = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "Notiz 05" in page and "Notiz 01" in page and "Notiz 06" not in page
    assert client.get(f"/contacts/{claus}?cursor=garbage").status_code == 400


def test_interaction_page_escapes_mail_content(client, staff, mail_id):
    log_in(client)
    response = client.get(f"/interactions/{mail_id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<script>" not in page
    assert "Reklamation &lt;script&gt;alert(1)&lt;/script&gt; Lieferung 4711" in page
    assert "&lt;script&gt;alert(&#39;text&#39;)&lt;/script&gt;" in page
    assert re.search(r'<pre class="mailtext">Guten Tag,\n\n4 Sensoren', page)
    assert f"Claus Jürgens &lt;{CLAUS}&gt;" in page  # from
    assert f"Jonas Becker &lt;{STAFF}&gt;" in page  # to
    assert f'<iframe sandbox class="mailhtml" title="Formatted mail" src="/interactions/{mail_id}/html">' in page


def test_mail_html_is_served_sandboxed(client, staff, mail_id):
    log_in(client)
    response = client.get(f"/interactions/{mail_id}/html")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    assert "<b>defekt</b>" in body
    assert "script" not in body  # sanitised when the mail was processed


def test_mail_without_html_has_no_frame(client, staff, factory, settings, claus):
    msg = EmailMessage()
    msg["From"] = CLAUS
    msg["To"] = STAFF
    msg["Subject"] = "Nur Text"
    msg.set_content("Hallo")
    interaction_id = deliver(factory, settings, msg)
    log_in(client)
    assert "<iframe" not in client.get(f"/interactions/{interaction_id}").get_data(as_text=True)
    assert client.get(f"/interactions/{interaction_id}/html").status_code == 404
    assert client.get("/interactions/999999").status_code == 404


def test_attachment_is_a_download(client, staff, factory, mail_id):
    with factory() as session:
        attachment_id = session.execute(
            select(Attachment.id).where(Attachment.interaction_id == mail_id)).scalar_one()
    assert client.get(f"/attachments/{attachment_id}").status_code == 302  # not without a login
    log_in(client)
    response = client.get(f"/attachments/{attachment_id}")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"Prufprotokoll.pdf\"; filename*=UTF-8''Pr%C3%BCfprotokoll.pdf")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype == "application/octet-stream"
    assert response.data == b"%PDF-1.4\nfake\n"


def test_company_page_lists_its_people(client, staff, factory):
    from crm_inbox.models import Company, CompanyDomain

    with unit_of_work(factory) as session:
        firm = Company(name="Müller Maschinenbau GmbH", industry="Maschinenbau", tags=[], fields={})
        firm.domains = [CompanyDomain(domain="mueller-maschinenbau.de")]
        firm.contacts = [Contact(name="Dörte Möller"), Contact(name="Uwe Weiß")]
        session.add(firm)
        session.flush()
        company_id = firm.id
    log_in(client)
    page = client.get(f"/companies/{company_id}").get_data(as_text=True)
    assert "Müller Maschinenbau GmbH" in page and "mueller-maschinenbau.de" in page
    assert "Dörte Möller" in page and "Uwe Weiß" in page
    listing = client.get("/contacts", query_string={"q": "maschinenbau"}).get_data(as_text=True)
    assert "Dörte Möller" in listing and f'href="/companies/{company_id}"' in listing


def test_pages_use_no_inline_styles_or_scripts(client, staff, mail_id):
    log_in(client)
    for path in ("/contacts", f"/interactions/{mail_id}"):
        page = client.get(path).get_data(as_text=True)
        assert "style=" not in page and "<style" not in page
        # scripts only from our own files (the CSP allows nothing inline)
        assert re.search(r"<script(?![^>]*\ssrc=)", page) is None
    assert client.get("/static/style.css").status_code == 200



def test_the_dashboard_shows_due_reminders_and_staff_complete_snooze_and_create_them(client, staff, factory,
                                                                                      claus):
    from datetime import timedelta

    from crm_inbox.models import Reminder, ReminderState, StaffUser, utcnow

    with unit_of_work(factory) as session:
        jonas = session.execute(select(StaffUser)).scalar_one().id
        overdue = utcnow() - timedelta(hours=1)
        session.add(Reminder(title="Call back Claus Jürgens", reason="missed_call", due_at=overdue, fire_at=None,
                             fired_at=overdue, contact_id=claus, assignee_id=jonas))
        session.add(Reminder(title="Team: Messe vorbereiten", reason="manual", due_at=overdue, fire_at=overdue))
        session.add(Reminder(title="Done long ago", reason="manual", due_at=overdue, fire_at=overdue,
                             state=ReminderState.DONE))
    log_in(client)
    assert client.get("/").headers["Location"] == "/dashboard"
    html = client.get("/dashboard").get_data(as_text=True)
    due = html.split("Next 7 days")[0]
    assert "Call back Claus Jürgens" in due and "Team: Messe vorbereiten" in due and "Done long ago" not in html
    assert f'href="/contacts/{claus}">Claus Jürgens</a>' in due
    token = csrf_token(html)

    with factory() as session:
        call_back = session.execute(select(Reminder).where(Reminder.reason == "missed_call")).scalar_one()
        team = session.execute(select(Reminder).where(Reminder.title.like("Team%"))).scalar_one()
    assert client.post(f"/reminders/{call_back.id}/done", data={"csrf_token": token}).status_code == 302
    assert client.post(f"/reminders/{team.id}/snooze", data={"csrf_token": token, "until": "tomorrow 9:00"}
                       ).status_code == 302
    assert client.post(f"/reminders/{team.id}/done", data={}).status_code == 400  # no CSRF token, no change
    html = client.get("/dashboard").get_data(as_text=True)
    due, upcoming = html.split("Next 7 days")
    assert "Call back Claus Jürgens" not in html
    assert "Team: Messe vorbereiten" in upcoming and "snoozed" in upcoming

    response = client.post("/reminders", data={"csrf_token": token, "title": "Angebot nachfassen",
                                               "due": "in 3 Tagen"})
    assert response.status_code == 302
    assert "Angebot nachfassen" in client.get("/dashboard").get_data(as_text=True).split("Next 7 days")[1]
    client.post("/reminders", data={"csrf_token": token, "title": "Ohne Zeit", "due": "irgendwann"})
    assert "No reminder made: due" in client.get("/dashboard").get_data(as_text=True)
    with factory() as session:
        done = session.get_one(Reminder, call_back.id)
        assert done.state == ReminderState.DONE and done.completed_by_id == jonas

    page = client.post("/dashboard/calendar", data={"csrf_token": token}).get_data(as_text=True)
    url = re.search(r'value="(http[^"]+/calendar/[^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert client.get(url.split("localhost", 1)[1]).mimetype == "text/calendar"


def test_triage_retries_a_failed_message_and_the_dashboard_counts_what_waits(client, staff, factory, settings,
                                                                            claus):
    from sqlalchemy import update

    from crm_inbox.models import InboundMessage, InboundState

    msg = EmailMessage()
    msg["From"] = f"Claus Jürgens <{CLAUS}>"
    msg["To"] = "crm@beispiel-firma.de"
    msg["Subject"] = "Lieferschein 4711"
    msg["Message-ID"] = "<lieferschein-4711@mueller-maschinenbau.de>"
    msg.set_content("Anbei der Lieferschein.")
    with unit_of_work(factory) as session:
        inbound_id = accept(session, bytes(msg), Envelope(mail_from=CLAUS, rcpt_to=("crm@beispiel-firma.de",))
                            ).inbound_id
        # as a crash in an earlier version would have left it
        session.execute(update(InboundMessage).where(InboundMessage.id == inbound_id)
                        .values(state=InboundState.FAILED, error="RuntimeError: simulated bug"))
    log_in(client)
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "Unassigned: 0 · failed: 1" in dashboard
    page = client.get("/triage").get_data(as_text=True)
    assert "RuntimeError: simulated bug" in page
    response = client.post(f"/triage/inbound/{inbound_id}/retry", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302
    assert f"Message {inbound_id}: processed." in client.get("/triage").get_data(as_text=True)
    with factory() as session:
        assert session.get_one(InboundMessage, inbound_id).state == InboundState.PROCESSED
    timeline = client.get(f"/contacts/{claus}").get_data(as_text=True)
    assert "Lieferschein 4711" in timeline
    # a second failure that needs nothing is ignored: it stays stored, off the list
    with unit_of_work(factory) as session:
        session.execute(update(InboundMessage).where(InboundMessage.id == inbound_id)
                        .values(state=InboundState.FAILED, error="RuntimeError: again"))
    page = client.get("/triage").get_data(as_text=True)
    client.post(f"/triage/inbound/{inbound_id}/ignore", data={"csrf_token": csrf_token(page)})
    assert "No failed messages." in client.get("/triage").get_data(as_text=True)
    with factory() as session:
        kept = session.get_one(InboundMessage, inbound_id)
        assert kept.state == InboundState.IGNORED and "RuntimeError: again" in (kept.error or "")


def test_search_finds_companies_by_name_and_domain_and_mail_by_subject(client, staff, factory, mail_id):
    from crm_inbox.models import Company, CompanyDomain

    with unit_of_work(factory) as session:
        firm = Company(name="Müller Maschinenbau GmbH")
        firm.domains = [CompanyDomain(domain="mueller-maschinenbau.de")]
        session.add(firm)
    log_in(client)
    for q in ("müller masch", "mueller-maschinenbau.de", "@mueller-maschinenbau"):
        html = client.get("/contacts", query_string={"q": q}).get_data(as_text=True)
        assert ">Müller Maschinenbau GmbH</a>" in html, q
    html = client.get("/contacts", query_string={"q": "Sensoren"}).get_data(as_text=True)
    assert "<h2>Companies</h2>" not in html and "Search mail subjects for “Sensoren”" in html
    found = client.get("/search/mail", query_string={"q": "Lieferung 4711"}).get_data(as_text=True)
    assert f'href="/interactions/{mail_id}"' in found
    assert "&lt;script&gt;" in found and "<script>alert(1)" not in found
    assert "No subject contains" in client.get("/search/mail", query_string={"q": "100%_"}).get_data(as_text=True)


def test_ticket_pages_list_change_note_and_merge(client, staff, factory, settings, claus):
    from crm_inbox.models import Reminder, ReminderState, StaffUser, Ticket, TicketState
    from crm_inbox.tickets import service as ticket_service

    with unit_of_work(factory) as session:
        person = session.get_one(Contact, claus)
        first = ticket_service.open_ticket(session, settings, subject="Sensoren defekt", contact=person,
                                           interaction=None, opened_by=CLAUS)
        second = ticket_service.open_ticket(session, settings, subject="Nochmal: Sensoren", contact=person,
                                            interaction=None, opened_by=CLAUS)
        first_id, second_id, second_number = first.id, second.id, second.number
        jonas = session.execute(select(StaffUser)).scalar_one().id
    log_in(client)
    listing = client.get("/tickets").get_data(as_text=True)
    assert "Sensoren defekt" in listing and "Nochmal: Sensoren" in listing
    assert "Sensoren defekt" not in client.get("/tickets?whose=mine").get_data(as_text=True)
    page = client.get(f"/tickets/{first_id}").get_data(as_text=True)
    token = csrf_token(page)
    client.post(f"/tickets/{first_id}/change", data={"csrf_token": token, "state": "open", "priority": "high",
                                                     "assignee_id": str(jonas)})
    assert "Sensoren defekt" in client.get("/tickets?whose=mine").get_data(as_text=True)
    client.post(f"/tickets/{first_id}/notes", data={"csrf_token": token, "text": "Ersatz ist unterwegs"})
    page = client.get(f"/tickets/{first_id}").get_data(as_text=True)
    assert "note: Ersatz ist unterwegs" in page and "priority: normal → high" in page
    # the reminder that the ticket is waiting moved to Jonas with the ticket
    with factory() as session:
        waiting = session.execute(select(Reminder).where(Reminder.ticket_id == first_id)).scalar_one()
        assert waiting.assignee_id == jonas and waiting.state == ReminderState.OPEN

    response = client.post(f"/tickets/{first_id}/merge", data={"csrf_token": token, "target": f"#{second_number}"})
    assert response.headers["Location"] == f"/tickets/{second_id}"
    with factory() as session:
        merged = session.get_one(Ticket, first_id)
        assert merged.merged_into_id == second_id and merged.state == TicketState.CLOSED
        assert session.get_one(Reminder, waiting.id).state == ReminderState.DONE
    bad = client.post(f"/tickets/{second_id}/merge", data={"csrf_token": token, "target": "#999999"})
    assert bad.status_code == 302
    assert "No ticket #999999." in client.get(f"/tickets/{second_id}").get_data(as_text=True)


def test_staff_create_and_revoke_their_own_api_tokens(client, staff):
    log_in(client)
    page = client.get("/me").get_data(as_text=True)
    assert "No tokens." in page
    created = client.post("/me/tokens", data={"csrf_token": csrf_token(page), "name": "Telefonanlage"})
    html = created.get_data(as_text=True)
    shown = re.search(r'readonly value="(crm_[^"]+)" aria-label="New API token"', html)
    assert shown is not None, html
    token_value = shown.group(1)
    api = client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {token_value}"})
    assert api.status_code == 200
    page = client.get("/me").get_data(as_text=True)
    assert "Telefonanlage" in page and token_value not in page  # shown once only
    token_id = re.search(r'/me/tokens/(\d+)/revoke', page).group(1)  # type: ignore[union-attr]
    client.post(f"/me/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(page)})
    assert client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {token_value}"}).status_code == 401
    assert "revoked" in client.get("/me").get_data(as_text=True)


def test_the_timeline_filters_by_kind(client, staff, factory, claus, mail_id):
    log_in(client)
    page = client.get(f"/contacts/{claus}").get_data(as_text=True)
    client.post(f"/contacts/{claus}/notes", data={"csrf_token": csrf_token(page), "text": "Rückruf vereinbart"})
    everything = client.get(f"/contacts/{claus}").get_data(as_text=True)
    assert "Rückruf vereinbart" in everything and f"/interactions/{mail_id}" in everything
    notes = client.get(f"/contacts/{claus}?kind=note").get_data(as_text=True)
    assert "Rückruf vereinbart" in notes and f"/interactions/{mail_id}\"" not in notes
    mails = client.get(f"/contacts/{claus}?kind=email").get_data(as_text=True)
    assert "Rückruf vereinbart" not in mails and f"/interactions/{mail_id}" in mails
    assert client.get(f"/contacts/{claus}?kind=gossip").status_code == 400


def test_edit_the_contact_in_place(client, staff, factory, claus):
    from crm_inbox.models import AuditEntry

    log_in(client)
    page = client.get(f"/contacts/{claus}").get_data(as_text=True)
    assert 'name="emails"' in page
    response = client.post(f"/contacts/{claus}/edit", data={
        "csrf_token": csrf_token(page), "name": "Claus Jürgens-Weber", "role": "customer", "category": "A",
        "tags": "Stammkunde, Messe 2026", "emails": f"{CLAUS}\nclaus@privat.de", "phones": "0171/2345678\n089 4711-33",
        "owner_id": ""})
    assert response.status_code == 302
    page = client.get(f"/contacts/{claus}").get_data(as_text=True)
    assert "<h1>Claus Jürgens-Weber</h1>" in page and 'href="mailto:claus@privat.de"' in page
    assert 'href="tel:+4989471133"' in page and "Messe 2026" in page
    bad = client.post(f"/contacts/{claus}/edit", data={"csrf_token": csrf_token(page), "emails": "kein-at-zeichen",
                                                         "role": "customer"})
    assert bad.status_code == 302
    page = client.get(f"/contacts/{claus}").get_data(as_text=True)
    assert "Not saved: emails" in page and "<h1>Claus Jürgens-Weber</h1>" in page
    with factory() as session:
        entry = session.execute(select(AuditEntry).where(AuditEntry.object_type == "contact")).scalar_one()
        assert entry.details["name"] == "Claus Jürgens-Weber"


def test_the_company_page_merges_the_timelines_of_its_people(client, staff, factory):
    from crm_inbox.models import Company
    from crm_inbox.timeline.service import add_note

    with unit_of_work(factory) as session:
        firm = Company(name="Weber Logistik GmbH")
        session.add(firm)
        session.flush()
        petra, jan, outsider = Contact(name="Petra Weber", company_id=firm.id), \
            Contact(name="Jan Weber", company_id=firm.id), Contact(name="Fremd")
        session.add_all([petra, jan, outsider])
        session.flush()
        for n in range(30):
            add_note(session, petra if n % 2 else jan, None, f"Notiz {n:02d}")
        add_note(session, outsider, None, "Nicht von Weber")
        firm_id = firm.id
    log_in(client)
    first = client.get(f"/companies/{firm_id}").get_data(as_text=True)
    assert "Notiz 29" in first and "Notiz 28" in first and "Nicht von Weber" not in first
    older = re.search(r'href="(/companies/\d+\?cursor=[^"#]+)#timeline">Older', first).group(1)  # type: ignore[union-attr]
    second = client.get(older.replace("&amp;", "&")).get_data(as_text=True)
    assert "Notiz 00" in second and "Notiz 29" not in second


def test_a_mail_on_the_wrong_customer_is_moved_from_its_page(client, staff, factory, claus, mail_id):
    with factory() as session:
        petra = session.execute(select(ContactEmail.contact_id).where(ContactEmail.email == "petra@web.de")
                                ).scalar_one()
    log_in(client)
    page = client.get(f"/interactions/{mail_id}").get_data(as_text=True)
    assert "Wrong customer? Move it" in page
    response = client.post(f"/triage/{mail_id}/assign", data={
        "csrf_token": csrf_token(page), "contact": "petra@web.de", "back": f"/interactions/{mail_id}"})
    assert response.headers["Location"] == f"/interactions/{mail_id}"
    import html

    assert "is now on Petra Köhler's timeline" in html.unescape(client.get(f"/interactions/{mail_id}").get_data(
        as_text=True))
    assert f"/interactions/{mail_id}" in client.get(f"/contacts/{petra}").get_data(as_text=True)
    assert f"/interactions/{mail_id}" not in client.get(f"/contacts/{claus}").get_data(as_text=True)


def test_staff_open_a_ticket_from_the_customer_page(client, staff, factory, claus):
    from crm_inbox.models import StaffUser, Ticket, TicketEvent

    log_in(client)
    page = client.get(f"/contacts/{claus}").get_data(as_text=True)
    response = client.post(f"/contacts/{claus}/tickets", data={"csrf_token": csrf_token(page),
                                                              "subject": "Rückruf wegen Sensoren"})
    with factory() as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        jonas = session.execute(select(StaffUser.id)).scalar_one()
        kinds = [e.kind for e in session.execute(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id))
                 .scalars()]
    assert response.headers["Location"] == f"/tickets/{ticket.id}"
    assert ticket.contact_id == claus and ticket.assignee_id == jonas and kinds[0] == "opened"
    assert f"#{ticket.number}" in client.get(f"/contacts/{claus}").get_data(as_text=True)
    empty = client.post(f"/contacts/{claus}/tickets", data={"csrf_token": csrf_token(page), "subject": "  "})
    assert empty.status_code == 302
    assert "a subject is needed" in client.get(f"/contacts/{claus}").get_data(as_text=True)


def test_triage_makes_a_new_contact_from_an_unassigned_mail(client, staff, factory, settings):
    from crm_inbox.models import Interaction

    msg = EmailMessage()
    msg["From"] = f"Jonas Becker <{STAFF}>"
    msg["To"] = "crm@beispiel-firma.de"
    msg["Subject"] = "Fwd: Anfrage Messestand"
    msg["Message-ID"] = "<fwd-new-contact@beispiel-firma.de>"
    msg.set_content("---------- Forwarded message ---------\nFrom: Hans Neumann\nDate: Mon, 2 Nov 2026 at 10:58\n"
                    "Subject: Anfrage Messestand\nTo: Jonas Becker\n\nGuten Tag, wir planen einen Messestand.\n")
    with unit_of_work(factory) as session:
        inbound_id = accept(session, bytes(msg), Envelope(mail_from=STAFF, rcpt_to=("crm@beispiel-firma.de",),
                                                          peer="127.0.0.1")).inbound_id
    interaction_id = process(factory, settings, inbound_id).interaction_id
    log_in(client)
    page = client.get("/triage").get_data(as_text=True)
    assert 'name="name" maxlength="300" value="Hans Neumann"' in page
    response = client.post(f"/triage/{interaction_id}/new-contact", data={
        "csrf_token": csrf_token(page), "name": "Hans Neumann", "email": "h.neumann@messebau-nord.de"})
    assert response.status_code == 302
    with factory() as session:
        contact = session.execute(select(Contact).where(Contact.name == "Hans Neumann")).scalar_one()
        assert [e.email for e in contact.emails] == ["h.neumann@messebau-nord.de"] and contact.origin == "triage"
        assert session.get_one(Interaction, interaction_id).contact_ids == [contact.id]
    assert "Nothing waits for a decision." in client.get("/triage").get_data(as_text=True)


def test_a_call_shows_who_talked_how_long_on_the_customer_page(client, staff, factory, settings, claus):
    from datetime import timedelta

    from crm_inbox.calls.service import CallEvent, apply_event
    from crm_inbox.models import Direction

    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    with unit_of_work(factory) as session:
        for kind, seconds in (("new", 0), ("answer", 10), ("hangup", 100)):
            apply_event(session, settings, CallEvent(
                "generic", "talk-1", kind, start + timedelta(seconds=seconds),
                direction=Direction.IN, from_number="+49 171 2345678", to_number="22", cause="normalClearing"))
    log_in(client)
    page = client.get(f"/contacts/{claus}").get_data(as_text=True)
    assert "answered · 1:30" in " ".join(page.split())


# --- the timeline tells the whole story: reminders, who took a call, a mail read in place ---

ITEM_SPLIT = '<li class="item '


def _timeline_items(page: str) -> list[str]:
    return [" ".join(chunk.split()) for chunk in page.split(ITEM_SPLIT)[1:]]


def test_a_reminder_set_and_done_shows_on_the_timeline(client, staff, factory, claus):
    log_in(client)
    page = client.get(f"/contacts/{claus}").get_data(as_text=True)
    client.post("/reminders", data={"csrf_token": csrf_token(page), "title": "Angebot nachfassen",
                                    "due": "in 3 days", "contact_id": str(claus), "back": f"/contacts/{claus}"})
    items = _timeline_items(client.get(f"/contacts/{claus}").get_data(as_text=True))
    assert len(items) == 1 and "Angebot nachfassen" in items[0] and "Reminder set, due" in items[0]
    assert "Jonas Becker" in items[0]  # who set it

    with unit_of_work(factory) as session:
        reminder_id = session.execute(select(Reminder.id)).scalar_one()
    page = client.get(f"/contacts/{claus}").get_data(as_text=True)
    client.post(f"/reminders/{reminder_id}/done", data={"csrf_token": csrf_token(page),
                                                         "back": f"/contacts/{claus}"})
    items = _timeline_items(client.get(f"/contacts/{claus}?kind=reminder").get_data(as_text=True))
    assert [("Reminder done" in i, "Reminder set" in i) for i in items] == [(True, False), (False, True)]
    german = client.get(f"/contacts/{claus}?lang=de").get_data(as_text=True)
    assert "Wiedervorlage erledigt" in german


def test_a_missed_calls_own_call_back_reminder_stays_off_the_timeline(client, staff, factory, settings, claus):
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    with unit_of_work(factory) as session:
        for kind, seconds in (("new", 0), ("hangup", 30)):
            apply_event(session, settings, CallEvent("generic", "missed-1", kind, start + timedelta(seconds=seconds),
                                                     direction=Direction.IN, from_number="+49 171 2345678",
                                                     to_number="22", cause="cancel"))
        assert session.execute(select(Reminder.reason)).scalars().all() == ["missed_call"]
    log_in(client)
    items = _timeline_items(client.get(f"/contacts/{claus}").get_data(as_text=True))
    assert len(items) == 1 and "not answered" in items[0]


def test_a_call_names_the_colleague_who_took_it(client, staff, factory, settings, claus):
    with unit_of_work(factory) as session:
        add_staff(session, "mia.wolf@beispiel-firma.de", "Mia Wolf", "staff", extension="22")
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    with unit_of_work(factory) as session:
        for kind, seconds in (("new", 0), ("answer", 5), ("hangup", 65)):
            apply_event(session, settings, CallEvent(
                "generic", "talk-22", kind, start + timedelta(seconds=seconds), direction=Direction.IN,
                from_number="+49 171 2345678", to_number="22", extension="22", cause="normalClearing"))
    log_in(client)
    items = _timeline_items(client.get(f"/contacts/{claus}").get_data(as_text=True))
    assert len(items) == 1 and "Mia Wolf" in items[0] and "answered · 1:00" in items[0]


def test_a_mails_full_text_opens_in_place(client, staff, factory, settings, claus, mail_id):
    log_in(client)
    page = client.get(f"/contacts/{claus}").get_data(as_text=True)
    item = page.split(ITEM_SPLIT)[1]
    details = item[item.index('<details class="fulltext">'):item.index("</details>")]
    # The whole text (the excerpt alone ends before the signature), escaped.
    assert "4 Sensoren sind defekt." in details and "Gruß\nClaus Jürgens" in details
    assert "&lt;script&gt;alert(&#39;text&#39;)&lt;/script&gt;" in details and "<script" not in details


def test_an_html_only_mail_opens_in_a_sandboxed_frame(client, staff, factory, settings, claus):
    msg = EmailMessage()
    msg["From"] = f"Claus Jürgens <{CLAUS}>"
    msg["To"] = STAFF
    msg["Subject"] = "Nur HTML"
    msg["Message-ID"] = "<nur-html@mueller-maschinenbau.de>"
    msg.set_content("<p>Bitte <b>rufen</b> Sie zurück.</p><img src=x onerror=alert(1)>", subtype="html")
    interaction_id = deliver(factory, settings, msg)
    log_in(client)
    page = client.get(f"/contacts/{claus}").get_data(as_text=True)
    assert '<iframe sandbox loading="lazy" class="mailhtml"' in page
    assert f'src="/interactions/{interaction_id}/html"' in page
    frame = client.get(f"/interactions/{interaction_id}/html")
    assert "sandbox" in frame.headers["Content-Security-Policy"] and "onerror" not in frame.get_data(as_text=True)


def test_search_as_you_type_suggests_contacts_for_logged_in_staff_only(client, staff, claus):
    assert client.get("/contacts/suggest?q=claus").status_code == 302  # to the login page
    log_in(client)
    items = client.get("/contacts/suggest?q=jürg").json["items"]
    assert items == [{"id": claus, "label": f"Claus Jürgens · {CLAUS}"}]
    assert client.get("/contacts/suggest?q=0171 2345678").json["items"][0]["id"] == claus  # a number, any format
    assert client.get("/contacts/suggest?q=c").json["items"] == []  # one letter finds too much to help


def test_edit_a_persons_company_and_free_fields_in_place(client, staff, factory, claus):
    from crm_inbox.models import AuditEntry, Company

    log_in(client)
    page = client.get(f"/contacts/{claus}").get_data(as_text=True)
    assert "Position: Einkauf</textarea>" in page  # the free fields, ready to edit
    form = {"csrf_token": csrf_token(page), "name": "Claus Jürgens", "role": "customer", "emails": CLAUS,
            "phones": "0171/2345678", "company": "Müller Maschinenbau GmbH",
            "fields": "Position: Einkaufsleiter\nKundennummer: 4711"}
    assert client.post(f"/contacts/{claus}/edit", data=form).status_code == 302
    page = client.get(f"/contacts/{claus}").get_data(as_text=True)
    assert "Einkaufsleiter" in page and "<dd>4711</dd>" in page
    with factory() as session:
        firm = session.execute(select(Company)).scalar_one()  # a new name made the company
        assert firm.name == "Müller Maschinenbau GmbH"
        assert session.get_one(Contact, claus).company_id == firm.id
        assert session.get_one(Contact, claus).fields == {"Position": "Einkaufsleiter", "Kundennummer": "4711"}
        assert session.execute(select(AuditEntry.action).where(AuditEntry.object_type == "company")).scalar_one() \
            == "create"
    # The same name typed another way is the same company; two of that name are never guessed between.
    form["company"] = "MÜLLER maschinenbau gmbh"
    client.post(f"/contacts/{claus}/edit", data=form)
    with unit_of_work(factory) as session:
        assert len(session.execute(select(Company)).all()) == 1
        session.add(Company(name="Petras Laden"))
        session.add(Company(name="Petras Laden"))
    form["company"] = "Petras Laden"
    client.post(f"/contacts/{claus}/edit", data=form)
    assert "several companies are named" in client.get(f"/contacts/{claus}").get_data(as_text=True)
    form.update(company="", fields="kein Doppelpunkt")
    client.post(f"/contacts/{claus}/edit", data=form)
    assert "is not “Key: value”" in client.get(f"/contacts/{claus}").get_data(as_text=True)
    with factory() as session:
        assert session.get_one(Contact, claus).company_id is not None  # nothing of the refused form was saved


def test_edit_the_company_in_place(client, staff, factory):
    from crm_inbox.models import Company, CompanyDomain

    with unit_of_work(factory) as session:
        firm = Company(name="Weber Logistik", tags=[], fields={})
        other = Company(name="Andere GmbH", tags=[], fields={})
        other.domains = [CompanyDomain(domain="andere.de")]
        session.add_all([firm, other])
        session.flush()
        firm_id = firm.id
    log_in(client)
    page = client.get(f"/companies/{firm_id}").get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "name": "Weber Logistik GmbH", "industry": "Logistik", "size": "50",
            "customer_type": "B2B", "category": "A", "tags": "Spedition", "domains": "weber-logistik.de",
            "phones": "089 4711-0", "fields": "USt-IdNr: DE123456789"}
    assert client.post(f"/companies/{firm_id}/edit", data=form).status_code == 302
    page = client.get(f"/companies/{firm_id}").get_data(as_text=True)
    assert "<h1>Weber Logistik GmbH</h1>" in page and "weber-logistik.de" in page and "DE123456789" in page
    assert 'href="tel:+498947110"' in page
    form["domains"] = "andere.de"
    client.post(f"/companies/{firm_id}/edit", data=form)
    page = client.get(f"/companies/{firm_id}").get_data(as_text=True)
    assert "Not saved: domains" in page and "already belongs to another company" in page


def test_a_read_only_user_cannot_edit_a_company(app, factory):
    from crm_inbox.models import Company

    with unit_of_work(factory) as session:
        add_staff(session, "leser@beispiel-firma.de", "Leser", "readonly", password=PASSWORD)
        firm = Company(name="Weber Logistik", tags=[], fields={})
        session.add(firm)
        session.flush()
        firm_id = firm.id
    client = app.test_client()
    log_in(client, "leser@beispiel-firma.de")
    page = client.get(f"/companies/{firm_id}").get_data(as_text=True)
    assert 'name="industry"' not in page
    assert client.post(f"/companies/{firm_id}/edit", data={"csrf_token": csrf_token(page), "name": "X"}
                       ).status_code == 403
    with factory() as session:
        assert session.get_one(Company, firm_id).name == "Weber Logistik"
