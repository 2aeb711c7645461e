"""What a quote or order confirmation says, apart from how it is laid out: the document's data (SalesDocument,
built from the rows), the words in German and English, number and date formats, and the business details
German law wants on every business letter (§ 35a GmbHG, § 37a HGB). ``pdf.py`` lays it out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.orm import object_session

from crm_inbox.config import CompanySettings, Settings
from crm_inbox.correspondence import signature
from crm_inbox.models import Company, Contact, Order, OrderLine, Quote, QuoteLine
from crm_inbox.models.sales import QuoteState
from crm_inbox.sales import letters
from crm_inbox.sales.totals import Totals, compute, format_money, format_number


@dataclass(frozen=True)
class DocumentLine:
    position: int
    text: str
    description: str | None
    quantity: Decimal
    unit: str
    unit_price: Decimal
    discount_percent: Decimal
    vat_rate: Decimal
    net: Decimal


@dataclass(frozen=True)
class SalesDocument:
    kind: str  # "quote" | "order"  (order = Auftragsbestätigung / order confirmation)
    number: str | None  # None: a draft (printed "ENTWURF"/"DRAFT")
    date: dt.date
    valid_until: dt.date | None  # quotes
    language: str  # "de" | "en"
    address: list[str]  # from letters.recipient_address
    greeting: str
    intro: str | None
    lines: tuple[DocumentLine, ...]
    totals: Totals
    terms: str | None
    customer_number: str | None = None
    reference: str | None = None  # an order's quote number
    draft: bool = False  # a new version of a sent quote keeps its number but is still a draft

    @property
    def is_draft(self) -> bool:
        return self.draft or self.number is None


TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "quote": "Angebot", "order": "Auftragsbestätigung", "draft": "ENTWURF",
        "quote_no": "Angebot-Nr.", "order_no": "Auftrags-Nr.", "date": "Datum", "valid_until": "Gültig bis",
        "reference": "Ihre Bestellung zu", "customer_no": "Kunden-Nr.", "page": "Seite", "of": "von",
        "phone": "Tel.", "pos": "Pos.", "text": "Bezeichnung", "quantity": "Menge", "unit": "Einheit",
        "unit_price": "Einzelpreis", "discount": "Rabatt", "vat": "USt.", "amount": "Betrag",
        "net_at": "Nettobetrag zu {rate} % USt.", "net": "Summe netto", "vat_at": "zzgl. {rate} % USt.",
        "gross": "Gesamtbetrag",
        "payment": "Zahlbar innerhalb von {days} Tagen nach Rechnungsstellung ohne Abzug.",
        "payment_now": "Zahlbar sofort nach Rechnungsstellung ohne Abzug.",
        "validity": "Dieses Angebot ist gültig bis zum {date}.", "closing": "Mit freundlichen Grüßen",
        "intro_quote": "vielen Dank für Ihre Anfrage. Gerne bieten wir Ihnen Folgendes an:",
        "intro_order": "vielen Dank für Ihren Auftrag, den wir Ihnen hiermit wie folgt bestätigen:",
        "bank": "Bank",
    },
    "en": {
        "quote": "Quote", "order": "Order confirmation", "draft": "DRAFT",
        "quote_no": "Quote no.", "order_no": "Order no.", "date": "Date", "valid_until": "Valid until",
        "reference": "Your order for", "customer_no": "Customer no.", "page": "Page", "of": "of",
        "phone": "Phone", "pos": "Item", "text": "Description", "quantity": "Qty", "unit": "Unit",
        "unit_price": "Unit price", "discount": "Disc.", "vat": "VAT", "amount": "Amount",
        "net_at": "Net amount at {rate} % VAT", "net": "Total net", "vat_at": "plus {rate} % VAT",
        "gross": "Total amount",
        "payment": "Payable within {days} days of the invoice date without deduction.",
        "payment_now": "Payable on receipt of the invoice without deduction.",
        "validity": "This quote is valid until {date}.", "closing": "Kind regards",
        "intro_quote": "Thank you for your enquiry. We are pleased to offer you the following:",
        "intro_order": "Thank you for your order, which we hereby confirm as follows:",
        "bank": "Bank",
    },
}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


def language_of(value: str | None) -> str:
    """Documents are German or English; anything else ("en-GB", "fr") is read as its nearest."""
    return "de" if (value or "").strip().lower().startswith("de") else "en"


def texts(language: str) -> dict[str, str]:
    return TEXTS[language_of(language)]


def format_date(day: date, language: str) -> str:
    if language_of(language) == "de":
        return f"{day.day:02d}.{day.month:02d}.{day.year}"
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _places(value: Decimal, least: int, most: int) -> int:
    exponent = value.normalize().as_tuple().exponent
    return min(most, max(least, -exponent if isinstance(exponent, int) else least))


def format_quantity(value: Decimal, language: str) -> str:
    """``2``, ``1,5``, ``2,125``: as many places as the quantity has, at most three."""
    return format_number(value, language_of(language), _places(value, 0, 3))


def format_unit_price(value: Decimal, language: str) -> str:
    """Two places, up to four when the price has them (``0,0049 €``)."""
    language = language_of(language)
    text = format_number(value, language, _places(value, 2, 4))
    if language == "de":
        return f"{text} €"
    return f"-€{text[1:]}" if text.startswith("-") else f"€{text}"


def format_percent(value: Decimal, language: str) -> str:
    """``19``, ``7,5``: without a percent sign (the column says so) and without needless places."""
    return format_number(value, language_of(language), _places(value, 0, 2))


def amount(value: Decimal, language: str) -> str:
    return format_money(value, language_of(language))


def _group_iban(iban: str) -> str:
    compact = "".join(iban.split()).upper()
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def business_details(company: CompanySettings, language: str) -> list[str]:
    """The lines a business letter must carry (§ 35a GmbHG, § 37a HGB), packed for a page footer: name with legal
    form and address; seat, register court and number, managing directors and VAT ID as the mail signature
    words them (one wording for letters and mail); the bank. Empty parts are left out."""
    words = texts(language)
    legal = signature.business_details(company, language_of(language))
    place = " ".join(part for part in (company.postcode.strip(), company.city.strip()) if part)
    bank = [f"{label}: {value}" for label, value in ((words["bank"], " ".join(company.bank_name.split())),
                                                     ("IBAN", _group_iban(company.iban)),
                                                     ("BIC", company.bic.strip())) if value]
    lines = [
        " · ".join(part for part in (company.name.strip(), company.street.strip(), place) if part),
        " · ".join(legal[:2]),
        " · ".join(legal[2:]),
        " · ".join(bank),
    ]
    return [line for line in lines if line]


def _today(settings: Settings) -> date:
    try:
        return datetime.now(ZoneInfo(settings.reminders.timezone)).date()
    except (KeyError, ValueError):  # an unknown zone is refused when the configuration loads; be safe anyway
        return date.today()


def _greeting(contact: Contact | None, language: str) -> str:
    if contact is None:
        return letters.greeting(None, None, None, language)
    return letters.greeting(contact.salutation, contact.title, contact.name, language)


def _customer_number(contact: Contact | None, company: Company | None) -> str | None:
    if company is not None and company.customer_number:
        return company.customer_number
    return contact.customer_number if contact is not None and contact.customer_number else None


def _address(frozen: list[str] | None, contact: Contact | None, company: Company | None, settings: Settings,
             language: str) -> list[str]:
    if frozen:
        return list(frozen)
    return letters.recipient_address(contact, company, settings.company.country, language)


def _document_lines(rows: Sequence[QuoteLine | OrderLine], totals: Totals) -> tuple[DocumentLine, ...]:
    return tuple(
        DocumentLine(position=row.position, text=row.text, description=row.description, quantity=row.quantity,
                     unit=row.unit, unit_price=row.unit_price, discount_percent=row.discount_percent,
                     vat_rate=row.vat_rate, net=net)
        for row, net in zip(rows, totals.line_nets, strict=True))


def document_from_quote(quote: Quote, contact: Contact | None, company: Company | None,
                        settings: Settings) -> SalesDocument:
    """The quote as printed. A draft is dated today and valid for ``quote_valid_days`` from today."""
    language = language_of(quote.language)
    day = quote.quote_date or _today(settings)
    valid_until = quote.valid_until
    if valid_until is None and quote.state == QuoteState.DRAFT:
        valid_until = date.fromordinal(day.toordinal() + settings.company.quote_valid_days)
    rows = sorted(quote.lines, key=lambda row: row.position)
    totals = compute(rows)
    return SalesDocument(
        kind="quote", number=quote.label if quote.number else None, date=day, valid_until=valid_until,
        language=language, address=_address(quote.address, contact, company, settings, language),
        greeting=_greeting(contact, language), intro=quote.intro or texts(language)["intro_quote"],
        lines=_document_lines(rows, totals), totals=totals, terms=quote.terms,
        customer_number=_customer_number(contact, company), draft=quote.state == QuoteState.DRAFT)


def document_from_order(order: Order, contact: Contact | None, company: Company | None,
                        settings: Settings) -> SalesDocument:
    """The order confirmation, naming the quote it came from."""
    language = language_of(order.language)
    rows = sorted(order.lines, key=lambda row: row.position)
    totals = compute(rows)
    reference = None
    session = object_session(order)
    if order.quote_id is not None and session is not None:
        quote = session.get(Quote, order.quote_id)
        reference = quote.label if quote is not None and quote.number else None
    return SalesDocument(
        kind="order", number=order.number, date=order.order_date, valid_until=None, language=language,
        address=_address(order.address, contact, company, settings, language), greeting=_greeting(contact, language),
        intro=texts(language)["intro_order"], lines=_document_lines(rows, totals), totals=totals, terms=None,
        customer_number=_customer_number(contact, company), reference=reference)
