"""The ERP coupling (#18): master data upserted by customer number, the nightly bulk sync, invoices and payments
on the customer's timeline, overdue customers as debtors, the orders poll, and the person's invoices in the
data-protection export and erasure."""

from __future__ import annotations

import base64
import io
import json
import logging
import zipfile
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.contacts.inputs import CompanyChanges, ContactChanges
from crm_inbox.contacts.service import create_company, create_contact
from crm_inbox.db import unit_of_work
from crm_inbox.erp.invoices import InvoiceInput, put_invoice
from crm_inbox.erp.overdue import is_overdue
from crm_inbox.errors import ValidationError
from crm_inbox.models import (
    Attachment,
    AuditEntry,
    Company,
    Contact,
    Direction,
    Event,
    Interaction,
    Invoice,
    InvoiceStatus,
    Order,
    Payment,
    utcnow,
)
from crm_inbox.privacy.service import erase_contact, write_export
from crm_inbox.sales.queries import ORDERS_SETTLE
from crm_inbox.staff.service import add_staff
from tests.conftest import make_settings, make_token
from tests.test_pages import PASSWORD, STAFF, log_in

API = "/api/v1"
PDF = b"%PDF-1.4\n% Rechnung RE-2026-0042\n%%EOF\n"


def _audits(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.execute(select(func.count()).select_from(AuditEntry)).scalar_one()


def test_master_data_upsert_is_idempotent_updates_what_changed_and_refuses_ambiguity(
        client: Any, auth: dict[str, str], factory: sessionmaker[Session]) -> None:
    company = {"name": "Müller Maschinenbau GmbH", "domains": ["mueller-maschinenbau.de"],
               "address": {"street": "Industriestr. 5", "postcode": "70173", "city": "Stuttgart", "country": "de"}}
    made = client.put(f"{API}/erp/companies/10001", json=company, headers=auth)
    assert made.status_code == 201, made.json
    assert (made.json["created"], made.json["customer_number"], made.json["address"]["country"]) == (True, "10001",
                                                                                                     "DE")
    audits = _audits(factory)
    again = client.put(f"{API}/erp/companies/10001", json=company, headers=auth)
    assert (again.status_code, again.json["created"], again.json["changed"]) == (200, False, [])
    assert again.json["updated_at"] == made.json["updated_at"] and _audits(factory) == audits

    moved = client.put(f"{API}/erp/companies/10001", json={**company, "address": {**company["address"],
                                                                                   "city": "Esslingen"}}, headers=auth)
    assert (moved.status_code, moved.json["changed"], moved.json["address"]["city"]) == (200, ["city"], "Esslingen")
    with factory() as session:
        entry = session.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).scalar_one()
        assert (entry.action, entry.object_type, entry.details) == ("update", "company", {"city": "Esslingen"})

    # A person names their company by its customer number; the number is searchable and shown on the page.
    klara = client.put(f"{API}/erp/contacts/20001", json={"name": "Klara Müller", "emails": ["Klara@Mueller.de"],
                                                           "company": "10001", "role": "customer"}, headers=auth)
    assert klara.status_code == 201, klara.json
    assert (klara.json["company_id"], klara.json["debtor"]) == (made.json["id"], False)
    assert client.put(f"{API}/erp/contacts/20001", json={"emails": ["klara@mueller.de"], "company": "10001"},
                      headers=auth).json["changed"] == []
    assert [c["id"] for c in client.get(f"{API}/contacts", query_string={"q": "20001"}, headers=auth).json["items"]] \
        == [klara.json["id"]]
    assert client.get(f"{API}/erp/contacts/20001", headers=auth).json["name"] == "Klara Müller"
    unknown = client.put(f"{API}/erp/contacts/20002", json={"company": "99999"}, headers=auth)
    assert (unknown.status_code, unknown.json["error"]["field"]) == (400, "company")

    with unit_of_work(factory) as session:  # two records with one number: the ERP's write must not guess
        for name in ("Hans Huber", "Hans Huber (alt)"):
            create_contact(session, ContactChanges(name=name, customer_number="30001"), "DE", None)
    clash = client.put(f"{API}/erp/contacts/30001", json={"name": "Hans Huber"}, headers=auth)
    assert clash.status_code == 409 and "30001" in clash.json["error"]["message"]
    with factory() as session:
        assert session.execute(select(func.count()).select_from(Contact)
                               .where(Contact.name == "Hans Huber")).scalar_one() == 1


def test_bulk_sync_reports_each_item_and_a_bad_item_leaves_nothing(client: Any, auth: dict[str, str],
                                                                  factory: sessionmaker[Session]) -> None:
    body = {"companies": [{"external_id": "10001", "name": "Müller GmbH"},
                          {"external_id": "10002", "name": "Kaputt AG", "address": {"country": "Germany"}},
                          {"name": "ohne Nummer"}],
            "contacts": [{"external_id": "20001", "name": "Klara Müller", "company": "10001"},
                         {"external_id": "20002", "name": "Falsche Adresse", "emails": ["kein-at-zeichen"]}]}
    first = client.post(f"{API}/erp/sync", json=body, headers=auth)
    assert first.status_code == 200, first.json
    assert first.json["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "error": 3}
    outcomes = [(i["kind"], i["external_id"], i["outcome"]) for i in first.json["items"]]
    assert outcomes == [("company", "10001", "created"), ("company", "10002", "error"), ("company", None, "error"),
                        ("contact", "20001", "created"), ("contact", "20002", "error")]
    assert first.json["items"][1]["error"]["field"] == "address.country"
    with factory() as session:
        assert session.execute(select(Company.customer_number)).scalars().all() == ["10001"]
        assert session.execute(select(Contact.customer_number)).scalars().all() == ["20001"]
        assert session.get_one(Contact, first.json["items"][3]["id"]).company_id == first.json["items"][0]["id"]

    body["contacts"][0]["name"] = "Dr. Klara Müller"
    second = client.post(f"{API}/erp/sync", json=body, headers=auth)
    assert second.json["counts"] == {"created": 0, "updated": 1, "unchanged": 1, "error": 3}
    assert second.json["items"][3]["changed"] == ["name"]
    too_many = client.post(f"{API}/erp/sync", json={"contacts": [{"external_id": str(i)} for i in range(1001)]},
                           headers=auth)
    assert too_many.status_code == 400


def test_erp_round_trip_invoice_with_pdf_on_the_timeline_and_payments(
        client: Any, auth: dict[str, str], factory: sessionmaker[Session]) -> None:
    """Master data, an invoice with its PDF and payments in; the same values back out."""
    with unit_of_work(factory) as session:  # the order the invoice bills, as the sales path numbered it
        order = Order(number="AB-2026-0099", order_date=date(2026, 10, 30), net_total=Decimal("1000.00"),
                      vat_total=Decimal("190.00"), gross_total=Decimal("1190.00"))
        session.add(order)
        session.flush()
        order_id = order.id
    company = client.put(f"{API}/erp/companies/10001", json={"name": "Müller GmbH"}, headers=auth).json
    person = client.put(f"{API}/erp/contacts/20001", json={"name": "Klara Müller", "company": "10001",
                                                            "language": "de"}, headers=auth).json
    invoice = {"date": "2026-11-02", "due_date": "2026-11-16", "net": "1000.00", "gross": "1190.00",
               "currency": "EUR", "status": "open", "customer_number": "20001", "order_number": "AB-2026-0099",
               "pdf": base64.b64encode(PDF).decode()}
    made = client.put(f"{API}/erp/invoices/RE-2026-0042", json=invoice, headers=auth)
    assert made.status_code == 201, made.json
    got = client.get(f"{API}/erp/invoices/RE-2026-0042", headers=auth).json
    assert {key: got[key] for key in ("date", "due_date", "net", "gross", "currency", "status", "customer_number",
                                      "order_number")} == {key: invoice[key] for key in invoice if key != "pdf"}
    assert (got["contact_id"], got["company_id"], got["order_id"], got["paid"]) == (person["id"], company["id"],
                                                                                   order_id, "0.00")
    assert client.get(got["pdf_url"], headers=auth).data == PDF
    assert client.get(f"{API}/erp/contacts/20001", headers=auth).json["name"] == "Klara Müller"

    [entry] = client.get(f"{API}/contacts/{person['id']}/timeline", headers=auth).json["items"]
    assert (entry["kind"], entry["subject"], entry["company_id"]) == ("document", "Rechnung RE-2026-0042",
                                                                      company["id"])
    assert [a["filename"] for a in entry["attachments"]] == ["RE-2026-0042.pdf"]

    audits = _audits(factory)
    same = client.put(f"{API}/erp/invoices/RE-2026-0042", json=invoice, headers=auth)
    assert (same.status_code, same.json["changed"]) == (200, []) and _audits(factory) == audits

    payment = {"id": "PAY-1", "invoice": "RE-2026-0042", "amount": "190.00", "date": "2026-11-10"}
    assert client.post(f"{API}/erp/payments", json=payment, headers=auth).status_code == 201
    repeat = client.post(f"{API}/erp/payments", json=payment, headers=auth)
    assert (repeat.status_code, repeat.json["invoice"]["paid"], repeat.json["invoice"]["status"]) == (
        200, "190.00", "open")
    other = client.post(f"{API}/erp/payments", json={**payment, "amount": "191.00"}, headers=auth)
    assert other.status_code == 409
    rest = client.post(f"{API}/erp/payments", json={**payment, "id": "PAY-2", "amount": "1000.00"}, headers=auth)
    assert (rest.status_code, rest.json["invoice"]["status"], rest.json["invoice"]["paid"]) == (201, "paid",
                                                                                              "1190.00")
    got = client.get(f"{API}/erp/invoices/RE-2026-0042", headers=auth).json
    assert [(p["id"], p["amount"], p["date"]) for p in got["payments"]] == [("PAY-1", "190.00", "2026-11-10"),
                                                                            ("PAY-2", "1000.00", "2026-11-10")]
    [entry] = client.get(f"{API}/contacts/{person['id']}/timeline", headers=auth).json["items"]  # still one entry
    detail = client.get(f"{API}/interactions/{entry['id']}", headers=auth).json["details"]
    assert (detail["status"], detail["paid"]) == ("paid", "1190.00")
    with factory() as session:
        assert session.execute(select(Event.type).where(Event.subject_type.in_(("invoice", "payment")))
                               .order_by(Event.id)).scalars().all() == [
            "invoice.created", "payment.created", "invoice.updated", "payment.created", "invoice.updated"]
    bad = client.put(f"{API}/erp/invoices/RE-2026-0043", json={**invoice, "pdf": "bm90IGEgcGRm"}, headers=auth)
    assert (bad.status_code, bad.json["error"]["field"]) == (400, "pdf")
    assert client.put(f"{API}/erp/invoices/RE-2026-0043", json={**invoice, "gross": "1.005"},
                      headers=auth).status_code == 400
    assert client.put(f"{API}/erp/invoices/RE-2026-0043", json={**invoice, "customer_number": "nobody"},
                      headers=auth).status_code == 400
    client.post(f"{API}/contacts", json={"name": "Klara Doppelt", "customer_number": "20001"}, headers=auth)
    assert client.put(f"{API}/erp/invoices/RE-2026-0043", json=invoice, headers=auth).status_code == 409


def test_overdue_invoices_make_a_debtor_with_a_banner_in_german(client: Any, auth: dict[str, str],
                                                               factory: sessionmaker[Session],
                                                               settings: Settings) -> None:
    today = date.today()
    assert is_overdue(InvoiceStatus.OPEN, today - timedelta(days=1), today)
    assert not is_overdue(InvoiceStatus.OPEN, today, today) and not is_overdue(InvoiceStatus.PAID, date(2020, 1, 1),
                                                                               today)
    assert is_overdue(InvoiceStatus.OVERDUE, None, today)
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        firm = create_company(session, CompanyChanges(name="Müller GmbH", customer_number="10001"), "DE", None)
        # She carries her company's number (imported so): the invoices to 10001 are the company's.
        klara = create_contact(session, ContactChanges(name="Klara Müller", company_id=firm.id, role="customer",
                                                       customer_number="10001"), "DE", None)
        late = today - timedelta(days=20)
        for number, gross, status, due in (("RE-1", "1000.00", "open", today - timedelta(days=5)),
                                           ("RE-2", "234.00", "overdue", today + timedelta(days=3)),
                                           ("RE-3", "500.00", "open", today + timedelta(days=3)),
                                           ("RE-4", "99.00", "paid", today - timedelta(days=5))):
            put_invoice(session, settings, number, InvoiceInput(
                issued_on=late, due_on=due, net=Decimal(gross), gross=Decimal(gross), customer_number="10001",
                status=status), None)
        ids = (klara.id, firm.id)
    person = client.get(f"{API}/contacts/{ids[0]}", headers=auth).json
    assert (person["role"], person["debtor"], person["overdue"]) == (
        "customer", True, {"count": 2, "gross": "1234.00", "outstanding": "1234.00"})
    assert client.get(f"{API}/companies/{ids[1]}", headers=auth).json["overdue"]["count"] == 2

    log_in(client)
    german = client.get(f"/contacts/{ids[0]}?lang=de").get_data(as_text=True)
    assert "2 überfällige Rechnungen, 1.234,00 €" in german and 'href="#invoices"' in german
    assert 'id="invoices"' in german and german.count('class="overdue"') == 2 and "RE-3" in german
    english = client.get(f"/companies/{ids[1]}?lang=en").get_data(as_text=True)
    assert "2 overdue invoices, €1,234.00" in english and "debtor" in english.lower()

    with unit_of_work(factory) as session:  # paid: no longer a debtor
        session.execute(update(Invoice).values(status=InvoiceStatus.PAID))
    assert client.get(f"{API}/contacts/{ids[0]}", headers=auth).json["debtor"] is False
    assert "overdue invoice" not in client.get(f"/contacts/{ids[0]}?lang=en").get_data(as_text=True)


def test_orders_poll_returns_each_order_once_and_never_passes_an_unsettled_one(
        client: Any, auth: dict[str, str], factory: sessionmaker[Session]) -> None:
    now = utcnow()
    old = now - ORDERS_SETTLE * 10
    with unit_of_work(factory) as session:
        orders = [Order(number=f"AB-2026-{n:04d}", order_date=now.date(), net_total=Decimal("100.00"),
                        vat_total=Decimal("19.00"), gross_total=Decimal("119.00")) for n in range(1, 5)]
        session.add_all(orders)
        session.flush()
        ids = [o.id for o in orders]
        # Two at the same moment (the id breaks the tie), one later, one just now (its transaction may be young).
        for ident, when in zip(ids, (old, old, old + timedelta(seconds=1), now), strict=True):
            session.execute(update(Order).where(Order.id == ident).values(updated_at=when))

    def poll(since: str, since_id: int) -> Any:
        response = client.get(f"{API}/orders", query_string={"since": since, "since_id": since_id, "limit": 2},
                              headers=auth)
        assert response.status_code == 200, response.json
        return response.json

    first = poll("", 0)
    assert [o["id"] for o in first["items"]] == ids[:2]
    second = poll(first["next_since"], first["next_since_id"])
    assert [o["id"] for o in second["items"]] == [ids[2]]
    # The young order becomes visible to the next poll from the cursor handed out, whatever its timestamp.
    with unit_of_work(factory) as session:
        session.execute(update(Order).where(Order.id == ids[3]).values(updated_at=old + timedelta(seconds=2)))
    third = poll(second["next_since"], second["next_since_id"])
    assert [o["id"] for o in third["items"]] == [ids[3]]
    assert poll(third["next_since"], third["next_since_id"])["items"] == []
    assert client.get(f"{API}/orders", query_string={"since": "2026-12-01T10:00:00"}, headers=auth).status_code == 400
    assert client.get(f"{API}/orders", query_string={"since": "gestern"}, headers=auth).status_code == 400


def test_the_persons_invoices_are_exported_and_kept_detached_when_erased(factory: sessionmaker[Session],
                                                                        settings: Settings) -> None:
    with unit_of_work(factory) as session:
        eva = create_contact(session, ContactChanges(name="Eva Privat", customer_number="20009"), "DE", None)
        invoice, _, _ = put_invoice(session, settings, "RE-2026-0077", InvoiceInput(
            issued_on=date(2026, 11, 2), net=Decimal("100.00"), gross=Decimal("119.00"), customer_number="20009",
            pdf=PDF), None)
        session.add(Payment(external_id="PAY-9", invoice_id=invoice.id, amount=Decimal("119.00"),
                            paid_on=date(2026, 11, 9)))
        ids = (eva.id, invoice.id, invoice.interaction_id)
    with unit_of_work(factory) as session:
        archive = io.BytesIO()
        counts = write_export(session, ids[0], archive, None)
    assert counts["invoices"] == 1
    with zipfile.ZipFile(archive) as zipped:
        data = json.loads(zipped.read("contact.json"))
        [entry] = [i for i in data["interactions"] if i["id"] == ids[2]]
        assert zipped.read(entry["attachments"][0]["file"]) == PDF
    [exported] = data["invoices"]
    assert (exported["number"], exported["gross"], [p["external_id"] for p in exported["payments"]]) == (
        "RE-2026-0077", "119.00", ["PAY-9"])

    with unit_of_work(factory) as session:
        assert erase_contact(session, ids[0], None)["invoices_kept"] == 1
    with factory() as session:
        kept = session.get_one(Invoice, ids[1])
        assert (kept.contact_id, kept.number, kept.gross) == (None, "RE-2026-0077", Decimal("119.00"))
        entry_row = session.get_one(Interaction, ids[2])
        assert entry_row.direction == Direction.INTERNAL and entry_row.contact_ids == []
        assert session.execute(select(Attachment.content).where(Attachment.interaction_id == ids[2])
                               ).scalar_one() == PDF
        assert session.get(Contact, ids[0]) is None


def test_lists_mark_debtors_with_one_query_for_the_whole_page(client: Any, auth: dict[str, str], engine: Engine,
                                                              factory: sessionmaker[Session],
                                                              settings: Settings) -> None:
    """The contact and company lists (pages and API) read the overdue invoices of all their rows at once: the
    number of statements is the same for 5 rows as for 50, and the figures are those of the single record."""
    today = date.today()

    def bill(session: Session, number: str, customer: str, gross: str, due: date) -> None:
        put_invoice(session, settings, number, InvoiceInput(
            issued_on=today - timedelta(days=30), due_on=due, net=Decimal(gross), gross=Decimal(gross),
            customer_number=customer), None)

    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        firm = create_company(session, CompanyChanges(name="Müller GmbH", customer_number="10001"), "DE", None)
        create_company(session, CompanyChanges(name="Huber AG", customer_number="10002"), "DE", None)
        create_contact(session, ContactChanges(name="Klara Müller", company_id=firm.id, customer_number="20001"),
                       "DE", None)
        for n in range(4):
            create_contact(session, ContactChanges(name=f"Person {n:02d}"), "DE", None)
        bill(session, "RE-1", "10001", "1000.00", today - timedelta(days=5))  # the company's: hers too
        bill(session, "RE-2", "20001", "234.00", today - timedelta(days=1))  # hers, billed with her company
        bill(session, "RE-3", "10002", "50.00", today + timedelta(days=5))  # not due yet

    log_in(client)
    lists = (f"{API}/contacts?limit=50", f"{API}/companies?limit=50", "/contacts?lang=en", "/companies?lang=en")

    def statements() -> list[int]:
        seen: list[str] = []
        listen = lambda *args: seen.append(args[2])  # noqa: E731
        counts = []
        event.listen(engine, "before_cursor_execute", listen)
        try:
            for url in lists:
                seen.clear()
                assert client.get(url, headers=auth).status_code == 200
                counts.append(len(seen))
        finally:
            event.remove(engine, "before_cursor_execute", listen)
        return counts

    statements()  # once before counting: the token's first use is written down (then once a minute)
    few = statements()
    with unit_of_work(factory) as session:  # 45 more people, each with their company; three owe
        for n in range(45):
            shop = create_company(session, CompanyChanges(name=f"Laden {n:02d}", customer_number=f"3{n:04d}"),
                                  "DE", None)
            create_contact(session, ContactChanges(name=f"Kunde {n:02d}", company_id=shop.id), "DE", None)
            if n < 3:
                bill(session, f"RE-L{n}", f"3{n:04d}", "10.00", today - timedelta(days=2))
    assert statements() == few

    people = client.get(f"{API}/contacts?limit=50", headers=auth).json["items"]
    assert len(people) == 50
    for item in people:  # the list's figures are the single record's (overdue_of)
        single = client.get(f"{API}/contacts/{item['id']}", headers=auth).json
        assert (item["debtor"], item["overdue"]) == (single["debtor"], single["overdue"])
    klara = next(p for p in people if p["name"] == "Klara Müller")
    assert klara["overdue"] == {"count": 2, "gross": "1234.00", "outstanding": "1234.00"}
    assert sorted(p["name"] for p in people if p["debtor"]) == ["Klara Müller", "Kunde 00", "Kunde 01", "Kunde 02"]
    firms = client.get(f"{API}/companies?limit=50", headers=auth).json["items"]
    assert {f["name"]: f["overdue"]["count"] for f in firms if f["debtor"]} == {
        "Müller GmbH": 2, "Laden 00": 1, "Laden 01": 1, "Laden 02": 1}
    mark = '<span class="badge warn">debtor</span>'
    assert client.get("/contacts?lang=en").get_data(as_text=True).count(mark) == 4
    assert client.get("/companies?lang=en").get_data(as_text=True).count(mark) == 4


def test_hostile_invoices_and_payments_are_a_4xx_with_one_log_line_and_write_nothing(
        factory: sessionmaker[Session], database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from web import create_app

    small = make_settings(database_url, tmp_path / "small", documents={"max_bytes": 4096})
    app = create_app(small, factory)
    app.config["MAX_CONTENT_LENGTH"] = 8192  # other requests; an invoice may still carry a 4 KB PDF in base64
    client = app.test_client()
    auth = {"Authorization": f"Bearer {make_token(factory, 'erp@beispiel-firma.de')}"}
    with unit_of_work(factory) as session:
        create_company(session, CompanyChanges(name="Müller GmbH", customer_number="10001"), "DE", None)
    good = {"date": "2026-11-02", "due_date": "2026-11-16", "net": "100.00", "gross": "119.00",
            "customer_number": "10001"}
    hostile: list[tuple[str, dict[str, Any]]] = [
        ("net", {"net": "100.001"}), ("net", {"net": 0.1 + 0.2}), ("gross", {"gross": "NaN"}),
        ("gross", {"gross": "1e3"}), ("gross", {"gross": "1000000000000.00"}), ("gross", {"gross": True}),
        ("currency", {"currency": "EURO"}), ("currency", {"currency": "€UR"}), ("currency", {"currency": "E1R"}),
        ("currency", {"currency": ""}), ("currency", {"currency": 978}),
        ("date", {"date": "2026-02-30"}), ("date", {"date": "0000-01-01"}), ("date", {"date": "+12026-01-01"}),
        ("date", {"date": 20261102}), ("due_date", {"due_date": "2026-13-01"}),
        ("due_date", {"due_date": "2026-11-01"}),  # before the invoice's date
        ("pdf", {"pdf": "kein base64!"}), ("pdf", {"pdf": "JVBERi0xLjQ=ä"}), ("pdf", {"pdf": 12}),
        ("pdf", {"pdf": base64.b64encode(b"GIF89a" + b"\0" * 40).decode()}),  # not a PDF
        ("pdf", {"pdf": base64.b64encode(PDF + b"x" * 4096).decode()}),  # over [documents] max_bytes
    ]
    caplog.set_level(logging.INFO)
    for field, change in hostile:
        caplog.clear()
        response = client.put(f"{API}/erp/invoices/RE-1", json={**good, **change}, headers=auth)
        assert (response.status_code, response.json["error"]["field"]) == (400, field), (change, response.json)
        assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1, change
    caplog.clear()
    huge = client.put(f"{API}/erp/invoices/RE-1", json={**good, "pdf": "A" * 100_000}, headers=auth)
    assert huge.status_code == 413 and "at most" in huge.json["error"]["message"]
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1
    with factory() as session:
        assert session.execute(select(func.count()).select_from(Invoice)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(AuditEntry)
                               .where(AuditEntry.object_type == "invoice")).scalar_one() == 0

    # The PDF as MIME wraps base64 (lines of 76) is the same PDF; a huge gross is fine when it fits the column.
    wrapped = base64.encodebytes(PDF).decode()
    made = client.put(f"{API}/erp/invoices/RE-1", json={**good, "gross": "999999999999.99", "pdf": wrapped},
                      headers=auth)
    assert made.status_code == 201, made.json
    assert client.get(made.json["pdf_url"], headers=auth).data == PDF
    payment = {"id": "PAY-1", "invoice": "RE-1", "amount": "999999999999.99", "date": "2026-11-10"}
    for field, change in (("amount", {"amount": "1.001"}), ("amount", {"amount": "0"}), ("amount", {"amount": -5}),
                          ("amount", {"amount": "Infinity"}), ("date", {"date": "2026-02-29"}),
                          ("date", {"date": "2026-11-10T00:00:00"})):
        response = client.post(f"{API}/erp/payments", json={**payment, **change}, headers=auth)
        assert (response.status_code, response.json["error"]["field"]) == (400, field), change
    assert client.post(f"{API}/erp/payments", json=payment, headers=auth).status_code == 201
    # A second payment would overflow the paid sum's column (a 500 on PostgreSQL before).
    overflow = client.post(f"{API}/erp/payments", json={**payment, "id": "PAY-2", "amount": "0.01"}, headers=auth)
    assert (overflow.status_code, overflow.json["error"]["field"]) == (400, "amount")

    with unit_of_work(factory) as session:  # the service checks the money itself, whoever calls it
        for net in (Decimal("1.005"), Decimal("NaN"), Decimal("1E+12")):
            with pytest.raises(ValidationError) as refused:
                put_invoice(session, small, "RE-2", InvoiceInput(issued_on=date(2026, 11, 2), net=net,
                                                                 gross=Decimal("2.00"), customer_number="10001"),
                            None)
            assert refused.value.field == "net"
