"""What the sales pages share: reading numbers, money and dates from forms (a wrong value is a ValidationError
naming the field, shown as a flash), stage labels, money as the reader's language writes it
(PDF downloads: web.downloads.pdf_response, as the API sends them)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import format_date, get_locale
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from crm_inbox.errors import ValidationError
from crm_inbox.ids import MAX_ID
from crm_inbox.sales.totals import format_money
from web.i18n import N_
from web.pages.blueprint import pages

STAGE_LABELS = {"qualified": N_("qualified"), "needs_analysis": N_("needs analysis"),
                "quote_sent": N_("quote sent"), "negotiation": N_("negotiation"), "won": N_("won"), "lost": N_("lost")}
QUOTE_STATE_LABELS = {"draft": N_("draft"), "final": N_("final"), "sent": N_("sent"), "accepted": N_("accepted"),
                      "declined": N_("declined"), "superseded": N_("superseded")}
ORDER_STATE_LABELS = {"open": N_("open"), "handed_off": N_("handed off"), "cancelled": N_("cancelled")}
SOURCE_LABELS = {"mail": N_("mail"), "call": N_("call"), "web_form": N_("web form"), "campaign": N_("campaign"),
                 "manual": N_("manual")}
MAX_NUMBER = 40  # characters of a typed number: longer is no amount anybody means
# After the separators are read: ASCII digits only (Decimal and int() read "١٢٣" as 123), no exponent, no NaN.
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_WHOLE = re.compile(r"[0-9]{1,12}")


def language() -> str:
    """The reader's language, "de" or "en" (money and dates are written as they read them)."""
    locale = get_locale()
    return "de" if locale is not None and locale.language == "de" else "en"


def stage_label(key: str) -> str:
    return _(STAGE_LABELS[key]) if key in STAGE_LABELS else key.replace("_", " ")


@pages.app_template_filter("money")
def format_money_filter(value: Decimal | None) -> str:
    return "—" if value is None else format_money(value, language())


@pages.context_processor
def sales_helpers() -> dict[str, Any]:
    return {"stage_label": stage_label,
            "quote_state_label": lambda s: _(QUOTE_STATE_LABELS.get(s, s)),
            "order_state_label": lambda s: _(ORDER_STATE_LABELS.get(s, s)),
            "source_label": lambda s: _(SOURCE_LABELS.get(s, s))}


def text(form: MultiDict[str, str], name: str) -> str | None:
    """The field's text with outer blanks removed; None when empty."""
    value = (form.get(name) or "").strip()
    return value or None


def decimal_value(raw: str | None, field: str) -> Decimal | None:
    """A number as typed, German ("1.234,50") or English ("1,234.50" or "1234.50"); None when empty."""
    value = (raw or "").strip().replace(" ", "").replace("€", "").replace("%", "")
    if not value:
        return None
    if len(value) > MAX_NUMBER:
        raise ValidationError(field, _("is not a number"))
    if "," in value and "." in value:  # the later one separates the decimals
        value = value.replace(".", "").replace(",", ".") if value.rfind(",") > value.rfind(".") \
            else value.replace(",", "")
    elif "," in value:
        value = value.replace(",", ".")
    if not _NUMBER.fullmatch(value):
        raise ValidationError(field, _("is not a number"))
    try:
        return Decimal(value)
    except InvalidOperation:  # the pattern lets none through; kept so that no typed value is ever a 500
        raise ValidationError(field, _("is not a number")) from None


def int_value(raw: str | None, field: str) -> int | None:
    value = (raw or "").strip()
    if not value:
        return None
    if not _WHOLE.fullmatch(value):
        raise ValidationError(field, _("is not a whole number"))
    return int(value)


def id_value(raw: str | None, field: str) -> int | None:
    """The id of a record chosen in a form (a product, an owner): None when empty; outside the id columns'
    range it cannot name a record (and PostgreSQL would refuse the lookup with an error)."""
    number = int_value(raw, field)
    if number is not None and not 1 <= number <= MAX_ID:
        raise ValidationError(field, _("is not a known record"))
    return number


def id_arg(raw: str | None) -> int | None:
    """An id from a link's query (a filter): anything that cannot be an id is no filter."""
    value = (raw or "").strip()
    if not _WHOLE.fullmatch(value):
        return None
    number = int(value)
    return number if 1 <= number <= MAX_ID else None


def date_value(raw: str | None, field: str) -> date | None:
    """A date from an <input type=date> (ISO), or as Germans type it (31.12.2026)."""
    value = (raw or "").strip()
    if not value:
        return None
    if not value.isascii():  # int() and fromisoformat read other scripts' digits
        raise ValidationError(field, _("is not a date"))
    try:
        if "." in value:
            day, month, year = value.split(".")
            return date(int(year), int(month), int(day))
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(field, _("is not a date")) from None


def error_text(exc: ValidationError) -> str:
    return _("%(field)s: %(why)s", field=exc.field.replace("_", " "), why=exc.message)


@pages.app_template_filter("short_date")
def format_short_date(value: date | None) -> str:
    """A date as the staff pages write times (dd.MM.yyyy in both languages)."""
    return format_date(value, "dd.MM.yyyy") if value else ""


@pages.app_template_filter("plain")
def format_plain(value: Decimal | None) -> str:
    """A number for an input field: no exponent, no trailing zeros ("1.000" → "1", "12.5000" → "12.5")."""
    if value is None:
        return ""
    text = f"{value.normalize():f}"
    return text
