"""Which column of a file goes where: suggestions from German and English headers (Outlook, Excel, Google,
Apple and vCard exports), checking a mapping, and saved mappings to reuse for the next file of that shape."""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_inbox import audit
from crm_inbox.errors import ValidationError
from crm_inbox.models import ImportMapping
from crm_inbox.text import single_line

Mapping = dict[str, str]  # header → target key, "field:<name>" (a free field), or "" (ignored)

# Target keys in display order (the web page owns their translated labels).
TARGETS: tuple[str, ...] = (
    "company", "salutation", "title", "first_name", "last_name", "name", "email", "email2", "email3", "phone",
    "phone2", "mobile", "phone_home", "fax", "street", "postcode", "city", "country", "customer_number", "category",
    "role", "tags", "industry", "website", "note", "department", "position",
)
FREE_FIELD = "field:"
# When a target is taken already, the next header that would map to it takes the next one of these.
_OVERFLOW = {"email": "email2", "email2": "email3", "phone": "phone2"}


def _norm(header: str) -> str:
    """ "E-Mail-Adresse geschäftlich" → "emailadressegeschaeftlich": case, umlauts, spaces and punctuation aside."""
    text = header.casefold().replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", text)


_SYNONYMS: dict[str, tuple[str, ...]] = {
    "company": ("Firma", "Firmenname", "Unternehmen", "Organisation", "Company", "Company Name", "Organization",
                "Organisation Name", "Organization Name", "Organization 1 - Name", "ORG", "Kundenname",
                "Account", "Account Name"),
    "salutation": ("Anrede", "Salutation", "Briefanrede", "Geschlecht", "Gender", "N:prefix"),
    "title": ("Titel", "Title", "Akademischer Titel", "Name Prefix"),
    "first_name": ("Vorname", "First Name", "Given Name", "Firstname", "Forename", "N:given"),
    "last_name": ("Nachname", "Last Name", "Family Name", "Surname", "Lastname", "Familienname", "N:family"),
    "name": ("Name", "Vollständiger Name", "Full Name", "Display Name", "Anzeigename", "Ansprechpartner",
             "Kontakt", "Contact", "Contact Name", "FN"),
    "email": ("E-Mail", "E-Mail-Adresse", "E-Mail Adresse", "Email", "E-mail Address", "Email Address", "Mail",
              "E-mail 1 - Value", "E-Mail 1", "Email 1", "E-Mail geschäftlich", "Business Email", "EMAIL:work",
              "Work Email"),
    "email2": ("E-Mail 2", "E-Mail 2: Adresse", "E-mail 2 Address", "E-mail 2 - Value", "Email 2",
               "E-Mail 2 Adresse", "EMAIL:home", "E-Mail privat", "Home Email", "Private Email"),
    "email3": ("E-Mail 3", "E-Mail 3: Adresse", "E-mail 3 Address", "E-mail 3 - Value", "Email 3",
               "E-Mail 3 Adresse", "EMAIL:other", "Other Email"),
    "phone": ("Telefon", "Telefonnummer", "Tel", "Tel.", "Phone", "Phone Number", "Telephone",
              "Telefon geschäftlich", "Business Phone", "Work Phone", "Phone 1 - Value", "Telefon Firma",
              "Telefon (geschäftlich)", "TEL:work", "Primary Phone", "Haupttelefon"),
    "phone2": ("Telefon geschäftlich 2", "Telefon 2", "Business Phone 2", "Phone 2 - Value", "Phone 2",
               "Weiteres Telefon", "Other Phone", "Telefon (andere)", "Company Main Phone", "Telefon Zentrale",
               "TEL:other"),
    "mobile": ("Mobil", "Mobiltelefon", "Handy", "Mobilnummer", "Mobile", "Mobile Phone", "Cell", "Cell Phone",
               "Mobile Number", "TEL:cell", "Mobiltelefon geschäftlich"),
    "phone_home": ("Telefon privat", "Telefon (privat)", "Home Phone", "Private Phone", "TEL:home"),
    "fax": ("Fax", "Telefax", "Fax geschäftlich", "Business Fax", "Faxnummer", "Fax Number", "TEL:fax"),
    "street": ("Straße", "Strasse", "Str.", "Anschrift", "Adresse", "Straße geschäftlich", "Street", "Address",
               "Street Address", "Business Street", "Address 1 - Street", "ADR:street", "Straße und Hausnummer",
               "Address Line 1"),
    "postcode": ("PLZ", "Postleitzahl", "Postleitzahl geschäftlich", "Zip", "ZIP Code", "Postal Code", "Postcode",
                 "Business Postal Code", "Address 1 - Postal Code", "ADR:postcode", "PLZ geschäftlich"),
    "city": ("Ort", "Stadt", "Wohnort", "Ort geschäftlich", "City", "Town", "Business City", "Address 1 - City",
             "ADR:city"),
    "country": ("Land", "Staat", "Land/Region geschäftlich", "Land geschäftlich", "Country", "Country/Region",
                "Business Country/Region", "Business Country", "Address 1 - Country", "ADR:country",
                "Länderkennzeichen"),
    "customer_number": ("Kundennummer", "Kundennr", "Kundennr.", "Kunden-Nr.", "Kd.-Nr.", "KdNr", "Debitor",
                        "Debitorennummer", "Customer Number", "Customer No", "Customer No.", "Customer ID",
                        "Account Number", "Organizational ID Number", "Externe ID", "External ID"),
    "category": ("Kategorie", "ABC", "ABC-Klasse", "ABC-Kategorie", "Kundenklasse", "Category", "Klasse"),
    "role": ("Rolle", "Typ", "Kontaktart", "Kontakttyp", "Role", "Contact Type"),
    "tags": ("Kategorien", "Schlagworte", "Schlagwörter", "Stichwörter", "Tags", "Categories", "Labels",
             "Group Membership", "Gruppen", "Groups", "CATEGORIES"),
    "industry": ("Branche", "Industrie", "Industry", "Sector", "Sektor"),
    "website": ("Webseite", "Website", "Webseite geschäftlich", "Homepage", "Internetseite", "Web Page", "Web",
                "URL", "Website 1 - Value"),
    "note": ("Notizen", "Notiz", "Bemerkung", "Bemerkungen", "Kommentar", "Anmerkungen", "Notes", "Note",
             "Comment", "Comments", "NOTE"),
    "department": ("Abteilung", "Department", "Organization 1 - Department", "Organization Department",
                   "ORG:unit"),
    "position": ("Position", "Funktion", "Job Title", "Jobtitel", "Berufsbezeichnung", "Stellung",
                 "Organization 1 - Title", "Organization Title", "TITLE", "ROLE", "Beruf"),
}
_LOOKUP: dict[str, str] = {}
for _target, _names in _SYNONYMS.items():
    for _name in _names:
        _LOOKUP.setdefault(_norm(_name), _target)
# vCard's "TITLE" is a job title, not a person's academic title: exact vCard names win over the loose ones.
_EXACT = {"TITLE": "position", "ROLE": "position", "N:prefix": "salutation", "NOTE": "note", "URL": "website"}


def suggest_mapping(headers: list[str]) -> Mapping:
    """A target per header as far as the header says it (German and English, Outlook/Google/Apple/vCard
    names); each target at most once; unknown headers → "" (ignored until someone maps them)."""
    taken: set[str] = set()
    out: Mapping = {}
    for header in headers:
        target = _EXACT.get(header) or _LOOKUP.get(_norm(header), "")
        while target and target in taken:
            target = _OVERFLOW.get(target, "")
        if target:
            taken.add(target)
        out[header] = target
    return out


def check_target(target: str) -> str:
    if target in TARGETS or target == "":
        return target
    if target.startswith(FREE_FIELD):
        name = single_line(target[len(FREE_FIELD):])
        if not name or len(name) > 100:
            raise ValidationError("mapping", "a free field needs a name of at most 100 characters")
        return FREE_FIELD + name
    raise ValidationError("mapping", f"{target[:60]!r} is not a target field")


def check_mapping(headers: list[str], mapping: Mapping) -> Mapping:
    """``mapping`` for these headers: every header present (unmentioned ones ignored), every target known,
    each target other than free fields used once."""
    unknown = [h for h in mapping if h not in headers]
    if unknown:
        raise ValidationError("mapping", f"the file has no column {unknown[0][:60]!r}")
    out: Mapping = {}
    used: dict[str, str] = {}
    for header in headers:
        target = check_target(str(mapping.get(header) or ""))
        if target and target in used:
            raise ValidationError("mapping", f"the columns {used[target][:60]!r} and {header[:60]!r} both go to "
                                             f"{target}")
        if target:
            used[target] = header
        out[header] = target
    return out


def saved_mappings(session: Session) -> list[ImportMapping]:
    return list(session.execute(select(ImportMapping).order_by(ImportMapping.name)).scalars())


def save_mapping(session: Session, name: str, mapping: Mapping, actor: int | None) -> ImportMapping:
    """Save ``mapping`` as ``name``; a mapping of that name is replaced. Audited."""
    name = single_line(name or "")
    if not name or len(name) > 100:
        raise ValidationError("name", "a mapping needs a name of at most 100 characters")
    checked = {str(h): check_target(str(t or "")) for h, t in mapping.items()}
    row = session.execute(select(ImportMapping).where(ImportMapping.name == name)).scalar_one_or_none()
    if row is None:
        row = ImportMapping(name=name, mapping=checked, created_by_id=actor)
        session.add(row)
    else:
        row.mapping = checked
        row.created_by_id = actor
    session.flush()
    audit.record(session, actor, "save", "import_mapping", row.id, {"name": name})
    return row
