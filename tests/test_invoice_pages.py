"""The ERP's invoices as an office user sees them: the person's page says what is outstanding and whom each
invoice bills, the timeline entry tells the invoice's state and sits at its date, an invoice is no mail to move
to another customer, and the company page leads back to the companies."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.contacts.inputs import CompanyChanges, ContactChanges
from crm_inbox.contacts.service import create_company, create_contact
from crm_inbox.db import unit_of_work
from crm_inbox.erp.invoices import InvoiceInput, PaymentInput, put_invoice, record_payment
from crm_inbox.models import Interaction, Invoice
from crm_inbox.staff.service import add_staff
from tests.test_pages import PASSWORD, STAFF, log_in


def test_invoices_show_what_is_outstanding_and_whom_they_bill(client: Any, factory: sessionmaker[Session],
                                                              settings: Settings) -> None:
    today = date.today()
    issued = today - timedelta(days=30)
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        firm = create_company(session, CompanyChanges(name="Müller Maschinenbau GmbH", customer_number="10001"),
                              "DE", None)
        klara = create_contact(session, ContactChanges(name="Klara Müller", company_id=firm.id,
                                                       customer_number="20001"), "DE", None)
        put_invoice(session, settings, "RE-42", InvoiceInput(
            issued_on=issued, due_on=today - timedelta(days=16), net=Decimal("12345.67"),
            gross=Decimal("14691.35"), customer_number="20001"), None)
        put_invoice(session, settings, "RE-12", InvoiceInput(
            issued_on=issued - timedelta(days=1), due_on=today + timedelta(days=9), net=Decimal("500.00"),
            gross=Decimal("595.00"), customer_number="10001"), None)
        record_payment(session, PaymentInput("P-1", "RE-42", Decimal("4000.50"), today), None)
        ids = klara.id, firm.id
    with factory() as session:
        entry = session.get(Interaction, session.execute(
            select(Invoice.interaction_id).where(Invoice.number == "RE-42")).scalar_one())
        assert entry is not None
        # At the invoice date (noon where the staff are), not when the ERP happened to send it.
        noon = datetime.combine(issued, datetime.min.time().replace(hour=12), ZoneInfo(settings.reminders.timezone))
        assert entry.occurred_at == noon.astimezone(UTC)
        entry_id = entry.id

    log_in(client)
    page = client.get(f"/contacts/{ids[0]}?lang=en").get_data(as_text=True)
    assert re.search(r'<html lang="en">', page)
    assert "1 overdue invoice, €10,690.85 outstanding" in page
    table = page[page.index('id="invoices"'):]
    table = table[:table.index("</table>")]
    assert "<th>Billed to</th>" in table and ">Outstanding</th>" in table
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)[1:]
    assert [re.findall(r">([^<>]+)</a>", row)[-1] for row in rows] == ["Klara Müller", "Müller Maschinenbau GmbH"]
    assert "€10,690.85" in rows[0] and "€595.00" in rows[1]
    # The timeline entry says the invoice's state.
    assert re.search(r"€14,691.35 gross, €10,690.85 outstanding\s*·\s*<span class=\"badge warn\">overdue</span>"
                     rf"\s*· due {(today - timedelta(days=16)):%d.%m.%Y}", page)

    invoice_page = client.get(f"/interactions/{entry_id}?lang=en").get_data(as_text=True)
    assert "€10,690.85" in invoice_page and "Wrong customer? Move it" not in invoice_page
    company = client.get(f"/companies/{ids[1]}?lang=de").get_data(as_text=True)
    assert '<html lang="de">' in company
    assert re.search(r'<p class="crumbs"><a href="/companies">Firmen</a></p>', company)
