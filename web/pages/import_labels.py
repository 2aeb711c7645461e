"""What staff read on the import pages for the engine's keys: the fields a column can be imported as, what a
row would do, and the counts. Marked here, translated where shown (a key the list misses is shown as it is)."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask_babel import gettext as _
from flask_babel import ngettext

from web.i18n import N_

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
}
STATE_LABELS = {"done": N_("imported"), "undone": N_("undone")}


def target_label(key: str) -> str:
    """A target key as staff read it; a free field as "Free field: <name>"."""
    if key.startswith("field:"):
        return _("Free field: %(name)s", name=key.removeprefix("field:"))
    return _(TARGET_LABELS[key]) if key in TARGET_LABELS else key


# The import service names what a duplicate duplicates in English: "row 7 (same e-mail)",
# "contacts 12 (same e-mail), 15 (same phone)", "company 3 (same name)".
_DUPLICATE = re.compile(r"(row|contacts?|company|companies) (\d+ \(same [a-z -]+\)(?:, \d+ \(same [a-z -]+\))*)")
_DUPLICATE_ITEM = re.compile(r"(\d+) \(same ([a-z -]+)\)")
SAME_LABELS = {"customer number": N_("same customer number"), "e-mail": N_("same e-mail address"),
               "phone": N_("same phone number"), "name": N_("same name")}


def duplicate_of(detail: str) -> tuple[str, list[tuple[int, str]]] | None:
    """("row" | "contact" | "company", [(number or id, why in the reader's language)]) of a duplicate's detail;
    None for a text of another shape (the page then shows it as it is)."""
    match = _DUPLICATE.fullmatch(detail)
    if match is None:
        return None
    kind = {"contacts": "contact", "companies": "company"}.get(match.group(1), match.group(1))
    items = [(int(n), _(SAME_LABELS[w]) if w in SAME_LABELS else w)
             for n, w in _DUPLICATE_ITEM.findall(match.group(2))]
    return kind, items


def labels() -> dict[str, object]:
    """The templates' helpers for these keys."""
    return {"target_label": target_label, "duplicate_of": duplicate_of,
            "action_label": lambda key: _(ACTION_LABELS[key]) if key in ACTION_LABELS else key,
            "filter_label": lambda key: _(FILTER_LABELS[key]) if key in FILTER_LABELS else key,
            "count_label": lambda key, n: COUNT_TEXTS[key](n) if key in COUNT_TEXTS else key,
            "state_label": lambda key: _(STATE_LABELS[key]) if key in STATE_LABELS else key}
