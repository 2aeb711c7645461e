"""What staff read on the import pages for the engine's keys: the fields a column can be imported as, what a
row would do, and the counts. Marked here, translated where shown (a key the list misses is shown as it is)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_babel import gettext as _
from flask_babel import ngettext

from crm_inbox.imports.differences import ADDED
from web.i18n import N_
from web.pages.filters import CONTACT_ROLE_LABELS

TARGET_LABELS = {
    "company": N_("Company"), "salutation": N_("Salutation"), "title": N_("Title"),
    "first_name": N_("First name"), "last_name": N_("Last name"), "name": N_("Full name"),
    "email": N_("E-mail"), "email2": N_("E-mail 2"), "email3": N_("E-mail 3"),
    "phone": N_("Phone"), "phone2": N_("Phone 2"), "mobile": N_("Mobile"), "phone_home": N_("Phone (home)"),
    "fax": N_("Fax"),
    "street": N_("Street"), "postcode": N_("Postcode"), "city": N_("City"), "country": N_("Country"),
    "customer_number": N_("Customer number"), "category": N_("Category"), "role": N_("Role"),
    "tags": N_("Tags"), "industry": N_("Industry"), "website": N_("Website"), "note": N_("Note"),
    "department": N_("Department"), "position": N_("Position"),
    # what an update can change besides the columns' own targets
    "emails": N_("e-mail addresses"), "phones": N_("phone numbers"), "fields": N_("free fields"),
    "domain": N_("Domain"),
}
ACTION_LABELS = {"new": N_("new"), "update": N_("updates"), "unchanged": N_("unchanged")}
# The filter links above the preview: the action and the heading of its count.
FILTER_LABELS = {"new": N_("New"), "update": N_("Updates"), "unchanged": N_("Unchanged"),
                 "duplicate": N_("Duplicates"), "error": N_("Errors")}
# After the count (shown apart, in bold): "3 new contacts", "1 error".
COUNT_TEXTS: dict[str, Callable[[int], str]] = {
    "new": lambda n: ngettext("new contact", "new contacts", n),
    "update": lambda n: ngettext("updated contact", "updated contacts", n),
    "unchanged": lambda n: ngettext("unchanged contact", "unchanged contacts", n),
    "duplicate": lambda n: ngettext("duplicate row", "duplicate rows", n),
    "error": lambda n: ngettext("row with an error", "rows with errors", n),
    "companies_new": lambda n: ngettext("new company", "new companies", n),
    "companies_update": lambda n: ngettext("updated company", "updated companies", n),
    "erased": lambda n: ngettext("record of a person erased since", "records of people erased since", n),
}
SALUTATION_LABELS = {"frau": N_("Ms"), "herr": N_("Mr"), "none": N_("by name")}  # as the contact page says
STATE_LABELS = {"done": N_("imported"), "undone": N_("undone")}


def target_label(key: str) -> str:
    """A target key as staff read it; a free field as "Free field: <name>"."""
    if key.startswith("field:"):
        return _("Free field: %(name)s", name=key.removeprefix("field:"))
    return _(TARGET_LABELS[key]) if key in TARGET_LABELS else key


# What a duplicate has in common with what it duplicates (the engine's ``RowOutcome.key``).
SAME_LABELS = {"customer number": N_("same customer number"), "e-mail": N_("same e-mail address"),
               "phone": N_("same phone number"), "company name": N_("same name")}
# Why a row cannot be imported (the engine's ``RowOutcome.reason`` for an error, with its ``params``).
ERROR_TEXTS = {
    "too_long": N_("%(field)s is longer than %(limit)s characters"),
    "column_too_long": N_("column “%(column)s” is longer than %(limit)s characters"),
    "bad_category": N_("category “%(value)s” is not A, B or C"),
    "unknown_role": N_("role “%(value)s” is unknown (lead, prospect, customer, debtor, supplier, other)"),
    "unknown_country": N_("country “%(value)s” is unknown"),
    "bad_email": N_("“%(value)s” is not an e-mail address"),
    "phone_too_long": N_("a phone number is longer than %(limit)s characters"),
    "nobody": N_("the row has no name, company, e-mail address or phone number"),
}


# The same for a batch's page, which keeps no values of the rows it left out (they may be personal data).
ERROR_TEXTS_KEPT = {
    **ERROR_TEXTS,
    "bad_category": N_("the category is not A, B or C"),
    "unknown_role": N_("the role is unknown"),
    "unknown_country": N_("the country is unknown"),
    "bad_email": N_("an e-mail address is not valid"),
}


def same_label(key: str) -> str:
    return _(SAME_LABELS[key]) if key in SAME_LABELS else key


def error_text(outcome: Any) -> str:
    """Why the row is an error, in the reader's language (the engine's English text for a reason not listed)."""
    text = ERROR_TEXTS.get(outcome.reason)
    if text is None:
        return str(outcome.detail)
    params = dict(outcome.params)
    if "field" in params:
        params["field"] = target_label(str(params["field"]))
    return _(text, **params)


def kept_error_text(entry: dict[str, Any]) -> str:
    """Why a row an import left out was an error, from what the batch keeps of it (its reason and parameters
    without values); the reason code itself for one this version does not know."""
    reason = str(entry.get("reason") or "")
    text = ERROR_TEXTS_KEPT.get(reason)
    params = dict(entry.get("params") or {})
    if "field" in params:
        params["field"] = target_label(str(params["field"]))
    try:
        return _(text, **params) if text else reason
    except (KeyError, TypeError, ValueError):  # kept by another version with other parameters
        return reason


def value_text(key: str, value: str) -> str:
    """A value an update changes as staff read it: a salutation or role in words, anything else as it is."""
    if key == "salutation" and value in SALUTATION_LABELS:
        return _(SALUTATION_LABELS[value])
    if key == "role" and value in CONTACT_ROLE_LABELS:
        return _(CONTACT_ROLE_LABELS[value])
    return value


def labels() -> dict[str, object]:
    """The templates' helpers for these keys."""
    return {"target_label": target_label, "same_label": same_label, "error_text": error_text,
            "kept_error_text": kept_error_text, "value_text": value_text, "added_key": ADDED.__contains__,
            "action_label": lambda key: _(ACTION_LABELS[key]) if key in ACTION_LABELS else key,
            "filter_label": lambda key: _(FILTER_LABELS[key]) if key in FILTER_LABELS else key,
            "count_label": lambda key, n: COUNT_TEXTS[key](n) if key in COUNT_TEXTS else key,
            "state_label": lambda key: _(STATE_LABELS[key]) if key in STATE_LABELS else key}
