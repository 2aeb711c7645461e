"""Web security of the staff pages and the API: cookie flags, CSRF on every state change, login rate limiting
shared through the database, a strict Content-Security-Policy on every page, downloads that cannot run,
API tokens stored only as hashes, and no mail HTML outside the sanitiser."""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from crm_inbox.db import unit_of_work
from crm_inbox.intake.store import Envelope, store
from crm_inbox.models import Base, Company, Contact, ImportBatch, LoginFailure, Reminder, utcnow
from crm_inbox.pipeline.runner import process
from crm_inbox.staff.service import add_staff, create_token
from tests.conftest import CRM, SUPPORT, make_settings
from tests.test_pages import PASSWORD, STAFF, csrf_token, log_in
from tests.test_permissions import ADMIN, PAGE_PERMISSIONS
from web import create_app

WEB = Path(__file__).resolve().parents[1] / "web"


@pytest.fixture
def staff(factory):  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        return add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD).id


def app_with(database_url: str, tmp_path: Path, factory: Any, **web: Any) -> Any:
    app = create_app(make_settings(database_url, tmp_path / "instance", web={"secret_key": "k", **web}), factory)
    app.config["TESTING"] = True
    return app


def wrong(client: Any, email: str = STAFF, **environ: Any) -> Any:
    page = client.get("/login", environ_base=environ)
    return client.post("/login", data={"email": email, "password": "falsch",
                                       "csrf_token": csrf_token(page.get_data(as_text=True))}, environ_base=environ)


# --- the session cookie ---------------------------------------------------------------------------------

def session_cookie(response: Any) -> str:
    [cookie] = [v for v in response.headers.getlist("Set-Cookie") if v.startswith("session=")]
    return cookie


@pytest.mark.parametrize(("web", "secure"), [
    ({"base_url": "https://crm.example.com"}, True), ({"secure_cookies": True}, True),
    ({"base_url": "http://localhost:8000"}, False)])
def test_the_session_cookie_is_httponly_samesite_and_secure_over_https(database_url, tmp_path, factory, staff,
                                                                        web, secure):
    client = app_with(database_url, tmp_path, factory, **web).test_client()
    response = log_in(client)
    assert response.status_code == 302
    cookie = session_cookie(response)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert ("Secure" in cookie) == secure


# --- login rate limiting --------------------------------------------------------------------------------

def test_five_failed_logins_block_that_address_from_that_client_with_429(database_url, tmp_path, factory, staff):
    client = app_with(database_url, tmp_path, factory).test_client()
    for _ in range(5):
        assert wrong(client).status_code == 200
    blocked = log_in(client)  # even the right password: the limit is checked first
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= 15 * 60
    assert "Too many failed log-ins" in blocked.get_data(as_text=True)
    # Another client may still log in to that account (an attacker cannot lock the owner out from afar) …
    other = app_with(database_url, tmp_path, factory).test_client()
    page = other.get("/login", environ_base={"REMOTE_ADDR": "198.51.100.20"})
    assert other.post("/login", data={"email": STAFF, "password": PASSWORD,
                                      "csrf_token": csrf_token(page.get_data(as_text=True))},
                      environ_base={"REMOTE_ADDR": "198.51.100.20"}).status_code == 302
    # … and once the failures are older than the window, the blocked client may try again.
    with unit_of_work(factory) as session:
        session.execute(update(LoginFailure).values(at=utcnow() - timedelta(minutes=16)))
    assert log_in(client).status_code == 302


def test_the_count_is_shared_by_every_process_on_the_database(database_url, tmp_path, factory, staff):
    """Two app instances (two serve processes) on one database: failures at one block at the other."""
    first = app_with(database_url, tmp_path, factory).test_client()
    second = app_with(database_url, tmp_path, factory).test_client()
    for client in (first, second, first, second, first):
        wrong(client)
    assert log_in(second).status_code == 429
    assert log_in(first).status_code == 429


def test_a_success_forgets_the_failures_and_one_client_trying_many_addresses_is_blocked(database_url, tmp_path,
                                                                                       factory, staff):
    client = app_with(database_url, tmp_path, factory, login_max_failures_per_ip=8).test_client()
    for _ in range(4):
        wrong(client)
    assert log_in(client).status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/dashboard").get_data(as_text=True))})
    with factory() as session:
        assert session.execute(select(LoginFailure).where(LoginFailure.account == STAFF)).first() is None
    for n in range(8):  # credential stuffing: a different address each time
        assert wrong(client, f"user{n}@beispiel-firma.de").status_code == 200
    assert wrong(client, "user99@beispiel-firma.de").status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_client_address_counts(database_url, tmp_path, factory, staff):
    client = app_with(database_url, tmp_path, factory, proxy_hops=1).test_client()
    for _ in range(5):
        wrong(client, HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert wrong(client, HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429
    assert wrong(client, HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 200  # another client behind it
    # Without proxy_hops a client cannot pick its own address by sending the header.
    direct = app_with(database_url, tmp_path, factory).test_client()
    for n in range(5):
        assert wrong(direct, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").status_code == 200
    assert wrong(direct, HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429


# --- every page: CSP, CSRF ------------------------------------------------------------------------------

@pytest.fixture
def world(factory, settings, staff):  # type: ignore[no-untyped-def]
    """One of everything a page route can show (ids 1), from a mail to support with an attachment."""
    msg = EmailMessage()
    msg["From"] = "Klaus Müller <klaus@mueller-maschinenbau.de>"
    msg["To"] = SUPPORT
    msg["Subject"] = "Angebot"
    msg.set_content("Bitte ein Angebot.")
    msg.add_alternative("<p>Bitte ein <b>Angebot</b>.</p><script>alert(1)</script>", subtype="html")
    msg.add_attachment(b"<svg onload=alert(1)>", maintype="image", subtype="svg+xml", filename="x.svg")
    inbound = store(factory, bytes(msg), Envelope(mail_from="klaus@mueller-maschinenbau.de", rcpt_to=(SUPPORT,)))
    process(factory, settings, inbound.inbound_id)
    failed = store(factory, b"\r\n\r\n", Envelope(rcpt_to=(CRM,)))
    process(factory, settings, failed.inbound_id)
    with unit_of_work(factory) as session:
        session.add(Company(name="Müller Maschinenbau"))
        session.add(ImportBatch(filename="adressen.csv", file_format="csv", sha256="0" * 64))  # its page and undo
        session.add(Reminder(title="Anrufen", due_at=utcnow(), reason="manual", contact_id=1, assignee_id=staff))
        session.flush()
        sales_world(session, settings)  # a deal, a draft quote and an order, each id 1
        campaign_world(session, settings, staff)  # a segment and a draft letter campaign, ids 1


def campaign_world(session: Any, settings: Any, staff: int) -> None:
    from crm_inbox.campaigns import service as campaigns
    from crm_inbox.segments import service as segments

    segment = segments.create(session, "Alle Kunden", {"field": "role", "op": "is", "value": "customer"}, actor=None)
    campaigns.create(session, settings, name="Frühjahr", segment_id=segment.id, channel="letter", subject="",
                     body="{{ greeting }}\n\nHallo.", sender_name=None, actor=staff)


def sales_world(session: Any, settings: Any) -> None:
    """A deal with a draft quote (ids 1) and, from another deal's accepted quote, an order (id 1)."""
    from decimal import Decimal

    from crm_inbox.sales.inputs import LineFields, OpportunityFields, ProductFields, QuoteFields
    from crm_inbox.sales.opportunities import create_opportunity
    from crm_inbox.sales.products import create_product
    from crm_inbox.sales.quotes import accept_quote, create_quote, finalise_quote

    product = create_product(session, settings, ProductFields(number="P-1", name="Probe", net_price=Decimal(10)),
                             by=None)
    lines = (LineFields(product_id=product.id),)
    for title in ("Deal", "Won"):
        opp = create_opportunity(session, settings, OpportunityFields(title=title, contact_id=1), by=None)
        quote = create_quote(session, settings, QuoteFields(opportunity_id=opp.id, lines=lines), by=None)
    accept_quote(session, settings, finalise_quote(session, settings, quote, by=None), by=None)


def page_rules(app: Any, method: str) -> list[Any]:
    return [r for r in app.url_map.iter_rules()
            if r.endpoint.startswith(("pages.", "feeds.", "reports.")) and method in r.methods]


def fill(rule: Any) -> str:
    return re.sub(r"<(?:int:)?[a-z_]+>", "1", rule.rule)


CSP_PARTS = ("default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'",
             "frame-ancestors 'self'", "form-action 'self'")


def test_every_page_has_a_strict_content_security_policy(app, client, world):
    log_in(client)
    checked = 0
    for rule in page_rules(app, "GET"):
        if rule.endpoint == "static":
            continue
        response = client.get(fill(rule), buffered=False)
        try:
            # Every page exists for the ids the world made (feeds need a secret: 404 is their page).
            # (Admin-only pages answer this staff user 403: their refusal carries the policy too.)
            expected = {200, 302} if rule.endpoint.startswith("pages.") else {200, 404}
            if PAGE_PERMISSIONS.get(rule.endpoint) == ADMIN:
                expected = {403}
            assert response.status_code in expected, rule
            policy = response.headers.get("Content-Security-Policy", "")
            assert policy, f"{rule.rule} has no Content-Security-Policy"
            assert "unsafe-inline" not in policy.split("script-src")[-1].split(";")[0], rule.rule
            assert "unsafe-eval" not in policy, rule.rule
            # Mail HTML, attachments and PDFs: never a document of the app's origin (sandboxed, nothing loads).
            if rule.endpoint in {"pages.interaction_html", "pages.attachment", "pages.quote_pdf",
                                 "pages.order_document"}:
                assert "sandbox" in policy and "default-src 'none'" in policy, rule.rule
            else:
                assert all(part in policy for part in CSP_PARTS), (rule.rule, policy)
            assert response.headers.get("X-Content-Type-Options") == "nosniff", rule.rule
            checked += 1
        finally:
            response.close()
    assert checked >= 15


def test_every_state_change_on_the_pages_needs_the_csrf_token(app, client, world):
    log_in(client)
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("pages.")
             and r.methods & {"POST", "PUT", "PATCH", "DELETE"}]
    assert len(rules) >= 15
    for rule in rules:
        for token in (None, "wrong-token"):
            data = {"text": "x", "title": "x"} | ({"csrf_token": token} if token else {})
            response = client.post(fill(rule), data=data)
            assert response.status_code == 400, (rule.rule, response.status_code)
    # Still logged in and the token still works: the refusals changed nothing.
    assert client.get("/dashboard").status_code == 200


def test_a_logged_in_browser_cannot_use_the_api_without_a_token(client, world):
    """The API authenticates by bearer token only, so a cross-site request riding on the cookie gets 401."""
    log_in(client)
    assert client.post("/api/v1/contacts", json={"name": "CSRF"}).status_code == 401
    assert client.patch("/api/v1/contacts/1", json={"name": "CSRF"}).status_code == 401
    assert client.get("/api/v1/contacts").status_code == 401


def test_attachments_are_downloads_that_cannot_run_here(client, auth, world):
    log_in(client)
    for response in (client.get("/attachments/1"), client.get("/api/v1/attachments/1", headers=auth)):
        assert response.status_code == 200
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.mimetype == "application/octet-stream"  # never image/svg+xml or text/html
        assert "sandbox" in response.headers["Content-Security-Policy"]


# --- tokens and HTML --------------------------------------------------------------------------------------

def test_api_tokens_are_stored_only_as_hashes_and_shown_once(factory, client, world):
    with unit_of_work(factory) as session:
        from crm_inbox.staff.service import find_staff

        raw = create_token(session, find_staff(session, STAFF), "script")
    log_in(client)
    created = client.post("/me/tokens", data={"name": "laptop", "csrf_token": csrf_token(
        client.get("/me").get_data(as_text=True))}, follow_redirects=True)
    shown = re.findall(r"crm_[A-Za-z0-9_-]{20,}", created.get_data(as_text=True))
    assert len(set(shown)) == 1, "the new token is shown once, on the page that created it"
    assert shown[0] not in client.get("/me").get_data(as_text=True)
    with factory() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                dump = repr(tuple(row))
                assert raw not in dump and shown[0] not in dump, f"a raw API token is stored in {table.name}"
    assert client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {shown[0]}"}).status_code == 200


def test_no_template_or_view_marks_user_text_as_safe_html():
    """Mail HTML reaches a page only through nh3 (``interaction_html``, in a sandboxed frame); nothing else may
    switch autoescaping off. The only Markup is the CSRF field, built from escaped parts."""
    offenders = []
    for path in WEB.rglob("*"):
        if path.suffix not in {".html", ".py"} or "translations" in path.parts:
            continue
        source = path.read_text()
        for needle in ("|safe", "| safe", "autoescape false", "Markup(", "render_template_string"):
            if needle in source and not (path.name == "csrf.py" and needle == "Markup("):
                offenders.append(f"{path.relative_to(WEB)}: {needle}")
    assert offenders == []


def test_nul_characters_in_any_input_are_refused_with_400_on_every_backend(client, auth, factory, world):
    """PostgreSQL cannot store U+0000 (found by schemathesis as a 500 on /calls/events); refused at the door."""
    with factory() as session:
        before = session.execute(select(Contact.id)).scalars().all()
    for response in (
        client.post("/api/v1/contacts", json={"name": "Klaus\x00Müller"}, headers=auth),
        client.post("/api/v1/calls/events", json={"event": "new", "call_id": "c1", "user": "a\x00b"}, headers=auth),
        client.patch("/api/v1/contacts/1", json={"tags": ["ok", {"x\x00": 1}]}, headers=auth),
        client.get("/api/v1/contacts?q=a%00b", headers=auth),
    ):
        assert response.status_code == 400 and response.json["error"]["code"] == "invalid", response.json
    log_in(client)
    assert client.get("/contacts?q=a%00b").status_code == 400
    page = client.get("/contacts/1").get_data(as_text=True)
    assert client.post("/contacts/1/notes", data={"text": "x\x00y", "csrf_token": csrf_token(page)}).status_code == 400
    with factory() as session:
        assert session.execute(select(Contact.id)).scalars().all() == before


def test_the_input_check_leaves_the_raw_body_for_signature_checks(app):
    """The NUL check parses the form; the raw bytes a webhook signs must still be readable afterwards."""
    with app.test_request_context("/api/v1/placetel/x", method="POST", data="a=1&b=2",
                                  content_type="application/x-www-form-urlencoded"):
        from flask import request

        from web.input_guard import offending_field

        assert offending_field() is None
        assert request.get_data() == b"a=1&b=2" and request.form["b"] == "2"
