"""One row of an address book as checked values: the person (if any) and the company, or the reason the row
cannot be imported. Pure: no database, so a bad row is refused before anything is written."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from crm_inbox.contacts.countries import ISO_COUNTRIES, country_code
from crm_inbox.errors import ValidationError
from crm_inbox.imports.mapping import FREE_FIELD, Mapping
from crm_inbox.imports.matching import company_key, email_domain, email_key, phone_key
from crm_inbox.models import Category, Role, Salutation
from crm_inbox.text import single_line

_MAX = {"name": 300, "company": 300, "title": 50, "customer_number": 50, "street": 200, "postcode": 20,
        "city": 100, "industry": 200}
_FIELD_MAX = 10_000  # a free field's or note's text
PERSON_FIELDS = ("department", "position", "note")  # targets without a column of their own: free fields
_EMAIL_LABELS = {"email": "work", "email2": "other", "email3": "other"}
_PHONE_LABELS = {"phone": "work", "phone2": "work", "mobile": "mobile", "phone_home": "private", "fax": "fax"}
_HERR = {"herr", "hr", "herrn", "mr", "sir", "male", "m", "maennlich", "männlich", "mann"}
_FRAU = {"frau", "fr", "mrs", "ms", "miss", "madam", "female", "w", "f", "weiblich", "frau/herr"}
_NEUTRAL = {"divers", "d", "x", "diverse", "none", "keine", "mx"}
_ROLES = {"lead": Role.LEAD, "interessent": Role.PROSPECT, "prospect": Role.PROSPECT, "kunde": Role.CUSTOMER,
          "customer": Role.CUSTOMER, "client": Role.CUSTOMER, "debitor": Role.DEBTOR, "debtor": Role.DEBTOR,
          "lieferant": Role.SUPPLIER, "supplier": Role.SUPPLIER, "vendor": Role.SUPPLIER, "kreditor": Role.SUPPLIER,
          "sonstige": Role.OTHER, "sonstiges": Role.OTHER, "andere": Role.OTHER, "other": Role.OTHER}
_GOOGLE_GROUPS = {"mycontacts", "starred"}  # Google's own labels, not the user's tags


# Why a row cannot be imported: a reason code (the page translates it) and its English text (the CLI's).
ERRORS = {
    "too_long": "{field} is longer than {limit} characters",  # field: a target key
    "column_too_long": "column {column!r} is longer than {limit} characters",
    "bad_category": "category {value!r} is not A, B or C",
    "unknown_role": "role {value!r} is unknown (lead, prospect, customer, debtor, supplier, other)",
    "unknown_country": "country {value!r} is unknown",
    "bad_email": "{value!r} is not an e-mail address",
    "phone_too_long": "a phone number is longer than {limit} characters",
    "nobody": "the row has no name, company, e-mail address or phone number",
}


class RowError(Exception):
    """Why a row cannot be imported: ``reason`` (a key of ERRORS) with its ``params``; str() is the English
    sentence."""

    def __init__(self, reason: str, **params: Any) -> None:
        self.reason, self.params = reason, params
        words = {k: v.replace("_", " ") if k == "field" else v for k, v in params.items()}
        super().__init__(ERRORS[reason].format(**words))


@dataclass(slots=True)
class RowData:
    row: int
    person: bool
    name: str | None = None
    company: str | None = None
    company_key: str = ""
    contact: dict[str, Any] = field(default_factory=dict)  # contact columns the row fills
    emails: list[tuple[str, str]] = field(default_factory=list)  # (address, label)
    phones: list[tuple[str, str | None, str]] = field(default_factory=list)  # (raw, e164, label)
    tags: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    company_values: dict[str, Any] = field(default_factory=dict)  # company columns the row fills
    company_fields: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        who = self.name or (self.emails[0][0] if self.person and self.emails else "")
        return ", ".join(p for p in (who, self.company or "") if p) or (self.phones[0][0] if self.phones else "")


def _one_line(target: str, value: str) -> str | None:
    text = single_line(value)
    limit = _MAX.get(target)
    if limit and len(text) > limit:
        raise RowError("too_long", field=target, limit=limit)
    return text or None


def person_name(given: dict[str, str]) -> str | None:
    """First and last name when the file has them (a vCard's FN may carry "Dr."), else the whole name."""
    parts = " ".join(p for p in (given.get("first_name"), given.get("last_name")) if p)
    name = given.get("name")
    if parts or not name:
        return parts or None
    if name.count(",") == 1:
        last, first = (p.strip() for p in name.split(","))  # "Schmidt, Anna" as Outlook writes it
        if first and last and " " not in last:
            return f"{first} {last}"
    return name


def salutation_and_title(salutation: str | None, title: str | None) -> tuple[Salutation | None, str | None]:
    """ "Herr Dr." → (herr, "Dr."); "Mrs" → frau; a title column holding "Herr" counts as the salutation."""
    found: Salutation | None = None
    rest: list[str] = []
    for word in f"{salutation or ''} {title or ''}".split():
        key = word.strip(".,").casefold()
        if found is None and key in _HERR:
            found = Salutation.HERR
        elif found is None and key in _FRAU:
            found = Salutation.FRAU
        elif found is None and key in _NEUTRAL:
            found = Salutation.NONE
        elif key in {"firma", "familie", "company", "eheleute", "und", "&"}:
            continue
        else:
            rest.append(word)
    text = " ".join(rest) or None
    if text and len(text) > 50:
        raise RowError("too_long", field="title", limit=50)
    return found, text


def category(value: str) -> Category:
    match = re.fullmatch(r"([abc])(?:[\s-]*(?:kunde|customer|klasse|class))?", value.strip().casefold())
    if not match:
        raise RowError("bad_category", value=value[:30])
    return Category(match.group(1).upper())


def role(value: str) -> Role:
    found = _ROLES.get(value.strip().casefold())
    if found is None:
        raise RowError("unknown_role", value=value[:30])
    return found


@cache
def _country_names() -> dict[str, str]:
    """Country names in German and English ("Deutschland", "Germany") → ISO codes, from Babel's tables."""
    from babel import Locale

    out = {"d": "DE", "a": "AT", "brd": "DE", "usa": "US", "uk": "GB", "england": "GB", "schweiz": "CH"}
    for lang in ("en", "de"):
        for code, name in Locale(lang).territories.items():
            if code in ISO_COUNTRIES:
                out.setdefault(name.casefold(), code)
    return out


def country(value: str) -> str:
    code = country_code(value) or _country_names().get(" ".join(value.split()).casefold())
    if code is None:
        raise RowError("unknown_country", value=value[:40])
    return code


def tags(value: str) -> list[str]:
    parts = re.split(r"\s*(?:;|,|:::)\s*", value)
    out = [single_line(p.lstrip("* ")) for p in parts]
    return [t[:100] for t in out if t and t.casefold().replace(" ", "") not in _GOOGLE_GROUPS]


def emails(target: str, value: str) -> list[tuple[str, str]]:
    out = []
    for raw in re.split(r"[;,\s]+", value.strip()):
        if not raw:
            continue
        email = email_key(raw.removeprefix("mailto:"))
        if not email or len(email) > 320:
            raise RowError("bad_email", value=raw[:60])
        out.append((email, _EMAIL_LABELS[target]))
    return out


def phones(target: str, value: str, region: str) -> list[tuple[str, str | None, str]]:
    out = []
    for raw in re.split(r"\s*[;\n]\s*", value.strip()):
        raw = single_line(raw)
        if not raw:
            continue
        if len(raw) > 100:
            raise RowError("phone_too_long", limit=100)
        out.append((raw, phone_key(raw, region), _PHONE_LABELS[target]))
    return out


def read_row(number: int, headers: list[str], cells: list[str], mapping: Mapping, region: str) -> RowData | None:
    """The row's checked values; None for an empty row; RowError for a row that cannot be imported."""
    given: dict[str, str] = {}
    free: dict[str, str] = {}
    for header, cell in zip(headers, cells, strict=False):
        target = mapping.get(header, "")
        value = cell.strip() if cell else ""
        if not target or not value:
            continue
        if len(value) > _FIELD_MAX:
            raise RowError("column_too_long", column=header[:40], limit=_FIELD_MAX)
        if target.startswith(FREE_FIELD):
            free[target[len(FREE_FIELD):]] = value
        else:
            given[target] = value
    if not given and not free:
        return None
    name = _one_line("name", person_name(given) or "")
    company = _one_line("company", given.get("company", ""))
    found_emails = [e for t in ("email", "email2", "email3") if t in given for e in emails(t, given[t])]
    found_phones = [p for t in _PHONE_LABELS if t in given for p in phones(t, given[t], region)]
    person = bool(name) or (not company and bool(found_emails or found_phones))
    if not person and not company:
        raise RowError("nobody")
    data = RowData(row=number, person=person, name=name, company=company, company_key=company_key(company))
    # The postal address is the company's when the person works at one (people use their company's).
    postal = {t: given[t] for t in ("street", "postcode", "city") if t in given}
    address: dict[str, Any] = {t: _one_line(t, v) for t, v in postal.items()}
    if "country" in given:
        address["country"] = country(given["country"])
    own: dict[str, Any] = {}
    if "customer_number" in given:
        own["customer_number"] = _one_line("customer_number", given["customer_number"])
    if "category" in given:
        own["category"] = category(given["category"])
    own_tags = tags(given["tags"]) if "tags" in given else []
    if "industry" in given:
        data.company_values["industry"] = _one_line("industry", given["industry"])
    if "website" in given:
        data.company_fields["website"] = given["website"]
    if person:
        salutation, title = salutation_and_title(given.get("salutation"), given.get("title"))
        data.contact = {"name": name, **own}
        if salutation is not None:
            data.contact["salutation"] = salutation
        if title:
            data.contact["title"] = title
        if "role" in given:
            data.contact["role"] = role(given["role"])
        data.emails, data.phones, data.tags = _unique(found_emails), _unique_phones(found_phones), own_tags
        data.fields = {t: given[t] for t in PERSON_FIELDS if t in given} | free
        if company:
            data.company_values.update(address)
        else:
            data.contact.update(address)
            data.fields.update({k: str(v) for k, v in data.company_values.items() if v})
            data.fields.update(data.company_fields)
            data.company_values, data.company_fields = {}, {}
        return data
    # A company-only row: what it fills belongs to the company.
    data.company_values.update(address | own)
    data.company_fields.update({t: given[t] for t in PERSON_FIELDS if t in given} | free)
    if found_emails:
        data.company_fields["email"] = ", ".join(e for e, _ in found_emails)
    data.emails = _unique(found_emails)  # their domains may become the company's
    data.phones = _unique_phones(found_phones)
    data.tags = own_tags
    return data


def _unique(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    return [i for i in items if not (i[0] in seen or seen.add(i[0]))]  # type: ignore[func-returns-value]


def _unique_phones(items: list[tuple[str, str | None, str]]) -> list[tuple[str, str | None, str]]:
    seen: set[str] = set()
    return [p for p in items if not ((p[1] or p[0]) in seen or seen.add(p[1] or p[0]))]  # type: ignore[func-returns-value]


def business_domain(data: RowData, free_mail: frozenset[str], own: frozenset[str]) -> str | None:
    """The first address's domain that is neither free mail nor our own: the company's mail domain."""
    for email, _ in data.emails:
        domain = email_domain(email)
        if domain not in free_mail and domain not in own:
            return domain
    return None


__all__ = ["RowData", "RowError", "ValidationError", "business_domain", "read_row"]
