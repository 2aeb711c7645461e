"""Hostile mail in a real browser: one mail carrying every trick (scripts in the subject, the display name and
attachment names, ``javascript:`` links in text and HTML, SVG/HTML/XML/JS attachments, CSS ``@import``,
``<img onerror>``), delivered over the real SMTP listener, plus a reminder about it and an unassigned forward.
Every page that shows it is opened in Chromium: no dialog opens, no payload sets ``window.__pwned``, no
request leaves for the attacker's host, no ``javascript:`` link exists, attachments are downloads. The mails
the CRM sends about it (ticket acknowledgement, reminder) carry no injected header."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crm_inbox.db import unit_of_work
from crm_inbox.models import Attachment, Interaction, Ticket, utcnow
from crm_inbox.reminders.service import ReminderInput, create, fire_due
from crm_inbox.runtime import Service
from crm_inbox.staff.service import add_staff
from tests.browser.conftest import PASSWORD, log_in, screenshot
from tests.conftest import CRM, SUPPORT, make_settings
from tests.test_outgoing_headers import assert_no_injection
from tests.test_tickets import CollectingHandler, sink  # noqa: F401  (sink is a fixture)

STAFF = "jonas.becker@beispiel-firma.de"
EVIL = "evil@hostile.example"


def payload(tag: str) -> str:
    """Sets a marker and opens a dialog if it ever runs."""
    return f"<img src=x onerror=\"window.__pwned='{tag}';alert('{tag}')\"><script>window.__pwned='{tag}'</script>"


SUBJECT = "Angebot " + payload("subject")
FROM_NAME = "\"<img src=x onerror=window.__pwned=1;alert(2)><script>window.__pwned=3</script>\""
HTML = f"""<html><head><style>@import url("http://evil.example/import.css");
body {{ background: url(http://evil.example/bg.png) }}</style><base href="http://evil.example/">
<meta http-equiv="refresh" content="0;url=javascript:alert('meta')"></head><body><p>Hallo</p>
<img src="http://evil.example/track.png" onerror="window.__pwned='img';alert('img')">{payload("html")}
<a href="javascript:window.__pwned='link';alert('link')">klick</a><a href="JaVaScRiPt:alert('case')">K</a>
<svg onload="alert('svg')"><script>alert('svg-script')</script></svg>
<iframe src="javascript:alert('iframe')"></iframe><form action="http://evil.example/"><input name=x></form>
<div style="background:url(javascript:alert('css'))">x</div><object data="http://evil.example/x.swf"></object>
</body></html>"""
TEXT = ("Guten Tag,\nLink: javascript:alert('plain') und <a href=\"javascript:alert('plain2')\">hier</a>\n"
        + payload("text") + "\n")
ATTACHMENTS = [
    ("bild.svg", "image", "svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(\'svg-file\')">'
                                     b"<script>alert('svg-file-2')</script></svg>"),
    ("seite.html", "text", "html", b"<script>alert('html-file')</script><img src=x onerror=alert(1)>"),
    ("daten.xml", "application", "xml", b'<?xml-stylesheet type="text/xsl" href="data:,"?><x><script '
                                        b'xmlns="http://www.w3.org/1999/xhtml">alert("xml-file")</script></x>'),
    ("code.js", "application", "javascript", b"alert('js-file')"),
    ("<img src=x onerror=alert('name')>.txt", "text", "plain", b"harmless"),
]


def hostile_mail() -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Placeholder <{EVIL}>"
    msg["To"] = SUPPORT
    msg["Subject"] = SUBJECT
    msg["Message-ID"] = "<hostile-1@hostile.example>"
    msg.set_content(TEXT)
    msg.add_alternative(HTML, subtype="html")
    for name, main, sub, data in ATTACHMENTS:
        msg.add_attachment(data, maintype=main, subtype=sub, filename=name)
    raw = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    # A quoted display name full of markup, set verbatim: the email package drops the quotes when it folds.
    return raw.replace(b"Placeholder", FROM_NAME.encode(), 1)


def hostile_forward() -> bytes:
    """Forwarded by staff, the original sender known only by a (hostile) name: waits in triage."""
    msg = EmailMessage()
    msg["From"] = f"Jonas Becker <{STAFF}>"
    msg["To"] = CRM
    msg["Subject"] = "Fwd: " + payload("triage-subject")
    msg["Message-ID"] = "<hostile-fwd-1@beispiel-firma.de>"
    msg.set_content("Bitte zuordnen " + payload("note") + "\n\n---------- Forwarded message ---------\n"
                    "From: Ev Il " + payload("fwd-name").replace("<", "&lt;") + "\n"
                    "Date: Mon, 2 Nov 2026 at 10:58\nSubject: Anfrage\nTo: Jonas Becker\n\nHallo.\n")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


@pytest.fixture
def hostile(database_url: str, tmp_path: Path, sink) -> Iterator[tuple[Service, CollectingHandler]]:  # noqa: F811
    handler, port = sink
    settings = make_settings(
        database_url, tmp_path / "instance", web={"port": 0, "secret_key": "browser-test"}, smtp={"port": 0},
        tickets={"acknowledge": True, "ack_body": "Guten Tag {name},\n\n{ticket}: {subject}\n"},
        notifications={"smtp_host": "127.0.0.1", "smtp_port": port, "from_address": SUPPORT, "timeout_seconds": 10})
    service = Service(settings)
    service.start()
    try:
        with unit_of_work(service.factory) as session:
            add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=60) as client:
            client.sendmail(EVIL, [SUPPORT], hostile_mail())
            client.sendmail(STAFF, [CRM], hostile_forward())
        service.worker.wait_idle()
        yield service, handler
    finally:
        service.stop()


def wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def assert_nothing_ran(page: Any, where: str, outside: list[str]) -> None:
    assert page.dialogs == [], (where, page.dialogs)
    for frame in page.frames:
        try:
            marker = frame.evaluate("() => window.__pwned")
        except Exception:  # a sandboxed, script-less frame: nothing of ours can run there either
            marker = None
        assert marker is None, (where, frame.url, marker)
        links = frame.locator("a[href^='javascript:' i], [src^='javascript:' i], [action^='javascript:' i]")
        assert links.count() == 0, (where, frame.url)
    assert outside == [], (where, outside)


def test_no_script_from_a_hostile_mail_ever_runs(browser, hostile):
    service, sink_handler = hostile
    with service.factory() as session:
        mail = session.execute(select(Interaction).where(Interaction.source_ref == "<hostile-1@hostile.example>")
                               ).scalar_one()
        forward = session.execute(select(Interaction).where(
            Interaction.source_ref == "<hostile-fwd-1@beispiel-firma.de>")).scalar_one()
        ticket = session.execute(select(Ticket)).scalar_one()
        attachments = list(session.execute(select(Attachment.id, Attachment.filename)
                                           .where(Attachment.interaction_id == mail.id)))
        assert mail.contact_ids, mail.attribution_reason
        contact_id = mail.contact_ids[0]
        assert forward.contact_ids == [], forward.attribution_reason  # waits in triage
    assert len(attachments) == len(ATTACHMENTS)
    with unit_of_work(service.factory) as session:  # a reminder about it, due now, with a hostile title
        create(session, ReminderInput(title="Rückruf " + payload("reminder") + "\r\nBcc: victim@evil.example",
                                      due_at=utcnow(), contact_id=contact_id, interaction_id=mail.id), 1)
    fire_due(service.factory, service.settings)
    service.sender.wake()
    wait_for(lambda: len(sink_handler.received) >= 2, "the acknowledgement and the reminder notification")

    context = browser.new_context(base_url=f"http://127.0.0.1:{service.web_port}", locale="en-US",
                                  timezone_id="Europe/Berlin", accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.dialogs = []  # type: ignore[attr-defined]
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))  # type: ignore[attr-defined]
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if "evil.example" in request.url else None)
    try:
        log_in(page, STAFF, PASSWORD)
        pages = {
            "timeline": f"/contacts/{contact_id}", "mail": f"/interactions/{mail.id}", "triage": "/triage",
            "triage-mail": f"/interactions/{forward.id}", "search": "/contacts?q=hostile.example",
            "search-mail": "/search/mail?q=Angebot", "ticket": f"/tickets/{ticket.id}", "tickets": "/tickets",
            "dashboard": "/dashboard", "mail-html": f"/interactions/{mail.id}/html"}
        for name, path in pages.items():
            response = page.goto(path)
            assert response is not None and response.status == 200, (name, path)
            # Open everything that opens (a mail's full text on the timeline, its sandboxed frame), so every
            # frame has loaded before it is searched for anything that ran.
            page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
            # A lazy frame below the fold loads only when scrolled to (as a reader would), and a frame that has
            # not loaded cannot be searched.
            for frame in page.locator("iframe").all():
                frame.scroll_into_view_if_needed()
            page.wait_for_load_state("networkidle")
            assert_nothing_ran(page, name, outside)
            screenshot(page, f"hostile-{name}")
        # The hostile texts are there, as text: escaped, not dropped.
        page.goto(f"/interactions/{mail.id}")
        assert "onerror" in page.locator("h1").inner_text()
        assert "javascript:alert('plain')" in page.locator("pre.mailtext").inner_text()
        page.goto("/dashboard")
        assert "window.__pwned='reminder'" in page.locator("main").inner_text()

        # Attachments: downloads with nosniff, never rendered under our origin, whatever their type.
        page.goto(f"/interactions/{mail.id}")
        for attachment_id, filename in attachments:
            response = page.request.get(f"/attachments/{attachment_id}")
            assert response.status == 200
            assert response.headers["content-disposition"].startswith("attachment;"), filename
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["content-type"] == "application/octet-stream"
            assert "<" not in filename and "/" not in filename
            with page.expect_download() as download:
                page.locator(f"a[href='/attachments/{attachment_id}']").click()
            assert download.value.suggested_filename
        assert_nothing_ran(page, "after the downloads", outside)
    finally:
        context.close()

    # The mails the CRM sent about it: one recipient each, no injected header, no HTML part to run anything.
    for captured in sink_handler.received:
        assert_no_injection(captured.raw)
        message = captured.message
        assert [part.get_content_type() for part in message.walk()] == ["text/plain"]
        assert len(captured.rcpt_tos) == 1
    assert {c.rcpt_tos[0] for c in sink_handler.received} == {EVIL, STAFF}
