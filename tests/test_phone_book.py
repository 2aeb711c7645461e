"""Phone books for desk phones and routers: each format parses with the expected names and numbers and
nothing else (no e-mail address, no address), an unknown or revoked token is a 404, the token never reaches
the log, and only admins make and revoke them."""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET

import pytest
import vobject

from crm_inbox.db import unit_of_work
from crm_inbox.models import Company, CompanyPhone, Contact, ContactEmail, ContactPhone
from crm_inbox.phone_book.tokens import create_token, revoke_token
from crm_inbox.staff.service import add_staff
from tests.test_pages import PASSWORD, csrf_token, log_in

ADMIN = "chefin@beispiel-firma.de"
STAFF = "jonas@beispiel-firma.de"


@pytest.fixture
def book(factory):  # type: ignore[no-untyped-def]
    """Two people with numbers (one at a company with a switchboard), one without a number; a live token and
    a revoked one."""
    with unit_of_work(factory) as session:
        add_staff(session, ADMIN, "Chefin", "admin", password=PASSWORD)
        add_staff(session, STAFF, "Jonas", "staff", password=PASSWORD)
        bau = Company(name="Müller & Söhne <Bau>", street="Hauptstraße 1", tags=[], fields={})
        bau.phones = [CompanyPhone(raw="+49 351 4711-0", e164="+493514711")]
        jurgen = Contact(name="Jürgen Müller", company=bau, street="Geheimweg 7", tags=[], fields={})
        jurgen.emails = [ContactEmail(email="juergen@mueller-bau.de")]
        jurgen.phones = [ContactPhone(raw="0351 4711-12", e164="+49351471112"),
                         ContactPhone(raw="0171 2345678", e164="+491712345678", label="Mobil"),
                         ContactPhone(raw="0351 4711-99", e164="+49351471199", label="Fax")]
        anna = Contact(name="Anna Zander", tags=[], fields={})
        anna.phones = [ContactPhone(raw="(089) 12 34", e164=None)]
        silent = Contact(name="Ohne Nummer", tags=[], fields={})
        silent.emails = [ContactEmail(email="ohne@nummer.example")]
        session.add_all([bau, jurgen, anna, silent])
        _row, live = create_token(session, "Fritz!Box Büro", None)
        old, revoked = create_token(session, "Alt", None)
        revoke_token(session, old.id, None)
    return live, revoked


def fetch(client, token: str, name: str) -> bytes:  # type: ignore[no-untyped-def]
    answer = client.get(f"/phonebook/{token}/{name}")
    assert answer.status_code == 200, name
    assert answer.headers["Cache-Control"] == "private, no-store"
    body = answer.data
    assert b"@" not in body and b"Geheimweg" not in body and b"Hauptstra" not in body and b"4711-99" not in body
    assert b"Ohne Nummer" not in body and b"+49351471199" not in body  # no number, no entry; faxes left out
    return body


def test_every_format_has_the_names_and_numbers_and_nothing_else(client, book):
    live, _revoked = book
    root = ET.fromstring(fetch(client, live, "yealink.xml"))
    assert root.tag == "YealinkIPPhoneDirectory"
    assert [(e.findtext("Name"), [t.text for t in e.findall("Telephone")]) for e in root] == [
        ("Anna Zander", ["0891234"]), ("Jürgen Müller (Müller & Söhne <Bau>)",
                                                          ["+49351471112", "+491712345678"]),
        ("Müller & Söhne <Bau>", ["+493514711"])]

    root = ET.fromstring(fetch(client, live, "grandstream.xml"))
    contacts = root.findall("Contact")
    assert [(c.findtext("FirstName"), c.findtext("LastName")) for c in contacts] == [
        ("Anna", "Zander"), ("Jürgen", "Müller"), ("", "Müller & Söhne <Bau>")]
    phones = contacts[1].findall("Phone")
    assert [(p.get("type"), p.findtext("phonenumber"), p.findtext("accountindex")) for p in phones] == [
        ("Work", "+49351471112", "1"), ("Mobile", "+491712345678", "1")]

    root = ET.fromstring(fetch(client, live, "snom.xml"))
    assert root.tag == "tbook" and root.get("complete") == "true"
    assert [(c.findtext("last_name"), [(n.get("no"), n.get("type")) for n in c.iter("number")]) for c in root] == [
        ("Zander", [("0891234", "business")]),
        ("Müller", [("+49351471112", "business"), ("+491712345678", "mobile")]),
        ("Müller & Söhne <Bau>", [("+493514711", "business")])]

    root = ET.fromstring(fetch(client, live, "fritzbox.xml"))
    [phonebook] = root.findall("phonebook")
    entries = [(c.findtext("person/realName"), [(n.text, n.get("type"), n.get("prio")) for n in c.iter("number")])
               for c in phonebook.findall("contact")]
    assert entries[1] == ("Jürgen Müller (Müller & Söhne <Bau>)",
                          [("+49351471112", "work", "1"), ("+491712345678", "mobile", "0")])
    assert [name for name, _ in entries] == ["Anna Zander", "Jürgen Müller (Müller & Söhne <Bau>)",
                                             "Müller & Söhne <Bau>"]

    cards = list(vobject.readComponents(fetch(client, live, "contacts.vcf").decode("utf-8")))
    assert [(c.fn.value, [t.value for t in c.contents["tel"]]) for c in cards] == [
        ("Anna Zander", ["0891234"]), ("Jürgen Müller (Müller & Söhne <Bau>)", ["+49351471112", "+491712345678"]),
        ("Müller & Söhne <Bau>", ["+493514711"])]
    assert all(set(c.contents) <= {"version", "fn", "n", "tel"} for c in cards)


def test_unknown_and_revoked_tokens_are_404_and_the_token_is_not_logged(app, client, book, caplog, monkeypatch):
    live, revoked = book
    assert client.get(f"/phonebook/{revoked}/yealink.xml").status_code == 404
    assert client.get("/phonebook/nicht-bekannt/yealink.xml").status_code == 404
    assert client.get(f"/phonebook/{live}/other.xml").status_code == 404
    assert client.post(f"/phonebook/{live}/snom.xml").status_code == 200  # Snom may ask with POST

    from flask import request

    def broken(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"cannot build the phone book for {request.path}")

    monkeypatch.setattr("web.feeds.phone_book", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # log and answer 500, as in production
    caplog.set_level(logging.INFO)
    assert client.get(f"/phonebook/{live}/yealink.xml").status_code == 500
    assert "/phonebook/***/yealink.xml" in caplog.text
    assert live not in caplog.text
    assert all(live not in r.getMessage() and live not in (r.exc_text or "") for r in caplog.records)


def test_only_admins_make_and_revoke_phone_book_urls(client, factory, book):
    log_in(client, STAFF)
    assert client.get("/admin/phone-books").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/me").get_data(as_text=True))})
    log_in(client, ADMIN)
    page = client.get("/admin/phone-books").get_data(as_text=True)
    assert "Fritz!Box Büro" in page and "switched off" in page
    made = client.post("/admin/phone-books", data={"label": "Yealink Empfang", "csrf_token": csrf_token(page)})
    assert made.status_code == 200
    html = made.get_data(as_text=True)
    urls = re.findall(r'value="(http://[^"]+/phonebook/[^"]+)"', html)
    assert [u.rsplit("/", 1)[1] for u in urls] == ["yealink.xml", "grandstream.xml", "snom.xml", "fritzbox.xml",
                                                   "contacts.vcf"]
    path = urls[0].split("://", 1)[1].split("/", 1)[1]
    assert client.get("/" + path).status_code == 200
    assert "/phonebook/" not in client.get("/admin/phone-books").get_data(as_text=True)  # shown once only
    assert client.post("/admin/phone-books", data={"label": " ", "csrf_token": csrf_token(html)}).status_code == 400
    token_id = re.findall(r'/admin/phone-books/(\d+)/revoke', html)[0]
    unticked = client.post(f"/admin/phone-books/{token_id}/revoke", data={"csrf_token": csrf_token(html)})
    assert unticked.status_code == 400 and client.get("/" + path).status_code == 200  # not without the tick
    assert client.post(f"/admin/phone-books/{token_id}/revoke",
                       data={"csrf_token": csrf_token(html), "confirm": "1"}).status_code == 302
    assert client.get("/" + path).status_code == 404  # the revoked phone book's URLs answer nothing
    assert client.post(f"/admin/phone-books/{token_id}/revoke",
                       data={"csrf_token": csrf_token(html), "confirm": "1"}).status_code == 409


def test_the_urls_use_the_configured_base_url(settings, factory, book):  # type: ignore[no-untyped-def]
    """Behind a proxy the browser's host is not what phones reach: [web] base_url wins when set."""
    from crm_inbox.config import replace
    from web import create_app

    app = create_app(replace(settings, web={"base_url": "https://crm.beispiel-firma.de/"}), factory)
    app.config["TESTING"] = True
    client = app.test_client()
    log_in(client, ADMIN)
    page = client.get("/admin/phone-books").get_data(as_text=True)
    html = client.post("/admin/phone-books", data={"label": "Snom Lager", "csrf_token": csrf_token(page)}
                       ).get_data(as_text=True)
    urls = re.findall(r'value="([^"]+/phonebook/[^"]+)"', html)
    assert len(urls) == 5 and all(u.startswith("https://crm.beispiel-firma.de/phonebook/") for u in urls), urls


@pytest.mark.parametrize(("label", "e164", "kind"), [
    ("Mobil", "+49351471112", "mobile"), ("cell", None, "mobile"), ("Handy privat", None, "mobile"),
    ("privat", None, "home"), ("Fax", "+491712345678", "fax"), ("Zentrale", "+491712345678", "work"),
    (None, "+491712345678", "mobile"), ("", "+4915112345678", "mobile"), (None, "+49351471112", "work"),
    (None, "+12015550123", "work"), (None, None, "work")])
def test_a_number_is_mobile_by_its_label_or_else_by_its_numbering_plan(label, e164, kind):  # type: ignore[no-untyped-def]
    from crm_inbox.phone_book.queries import number_kind

    assert number_kind(label, e164) == kind
