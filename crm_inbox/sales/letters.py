"""How a business letter addresses a person: the greeting ("Sehr geehrte Frau Dr. Müller,", "Dear Dr Müller,")
and the address block in the window (DIN 5008: company, person, street, postcode and town, and the country in
capitals only when the letter goes abroad). Pure functions; the contact rows are only read."""

from __future__ import annotations

from crm_inbox.models import Company, Contact

GERMAN_COUNTRIES = frozenset({"DE", "AT", "CH", "LI"})  # where a document without a language is German

# (German, English) names of the countries our customers mostly live in; any other prints its ISO code.
COUNTRY_NAMES: dict[str, tuple[str, str]] = {
    "DE": ("Deutschland", "Germany"),
    "AT": ("Österreich", "Austria"),
    "CH": ("Schweiz", "Switzerland"),
    "FR": ("Frankreich", "France"),
    "NL": ("Niederlande", "Netherlands"),
    "BE": ("Belgien", "Belgium"),
    "LU": ("Luxemburg", "Luxembourg"),
    "IT": ("Italien", "Italy"),
    "ES": ("Spanien", "Spain"),
    "PL": ("Polen", "Poland"),
    "CZ": ("Tschechien", "Czech Republic"),
    "DK": ("Dänemark", "Denmark"),
    "GB": ("Vereinigtes Königreich", "United Kingdom"),
    "US": ("Vereinigte Staaten", "United States"),
}

# Words that belong to a surname: "Frau von der Leyen", not "Frau Leyen".
_NAME_PARTICLES = frozenset({"von", "van", "de", "der", "den", "da", "di", "du", "del", "della", "dos", "zu",
                             "zum", "zur", "vom", "ten", "ter", "la", "le"})


def _clean(value: str | None) -> str:
    return " ".join(value.split()) if value else ""


def _salutation(value: str | None) -> str:
    # A Salutation is a StrEnum ("frau", "herr", "none"); typed text ("Frau", "Herr") means the same.
    return _clean(value).casefold()


def last_name(name: str | None) -> str:
    """The surname: the last word with its particles ("von der Leyen"); "Müller, Anna" is written surname first."""
    name = _clean(name)
    if "," in name:
        return _clean(name.split(",", 1)[0])
    words = name.split(" ")
    start = len(words) - 1
    while start > 0 and words[start - 1] in _NAME_PARTICLES:
        start -= 1
    return " ".join(words[start:])


def full_name(name: str | None) -> str:
    """The name in reading order: "Müller, Anna" is printed "Anna Müller"."""
    name = _clean(name)
    if "," in name:
        surname, first = (_clean(part) for part in name.split(",", 1))
        return f"{first} {surname}".strip()
    return name


def letter_title(title: str | None, language: str) -> str:
    """The academic title as used in a greeting and address: only doctor and professor are named in letters
    ("Dipl.-Ing." is not); English writes "Dr" and "Professor"."""
    words = _clean(title).casefold().replace(".", ". ").split()
    professor = any(word.startswith("prof") for word in words)
    doctor = any(word.startswith("dr") for word in words)
    if language == "de":
        return " ".join(part for part, present in (("Prof.", professor), ("Dr.", doctor)) if present)
    return "Professor" if professor else "Dr" if doctor else ""


def greeting(salutation: str | None, title: str | None, name: str | None, language: str) -> str:
    """The letter's first line: "Sehr geehrte Frau Dr. Müller," / "Dear Dr Müller,"; a person without a known
    salutation is greeted by full name ("Guten Tag Alex Müller,"), nobody at all as "Damen und Herren"."""
    kind = _salutation(salutation)
    surname = last_name(name)
    german = language == "de"
    if not surname:
        return "Sehr geehrte Damen und Herren," if german else "Dear Sir or Madam,"
    academic = letter_title(title, language)
    if german:
        if kind in ("frau", "herr"):
            opening = "Sehr geehrte Frau" if kind == "frau" else "Sehr geehrter Herr"
            return " ".join(part for part in (opening, academic, surname) if part) + ","
        return " ".join(part for part in ("Guten Tag", academic, full_name(name)) if part) + ","
    if academic:
        return f"Dear {academic} {surname},"
    if kind in ("frau", "herr"):
        return f"Dear {'Ms' if kind == 'frau' else 'Mr'} {surname},"
    return f"Dear {full_name(name)},"


def person_line(salutation: str | None, title: str | None, name: str | None, language: str) -> str:
    """The person as written in an address: "Frau Dr. Anna Müller" / "Dr Anna Müller", "Ms Anna Müller"."""
    written = full_name(name)
    if not written:
        return ""
    kind = _salutation(salutation)
    academic = letter_title(title, language)
    if language == "de":
        form = {"frau": "Frau", "herr": "Herr"}.get(kind, "")
    else:
        form = "" if academic else {"frau": "Ms", "herr": "Mr"}.get(kind, "")
    return " ".join(part for part in (form, academic, written) if part)


def country_name(code: str, language: str) -> str:
    """A country's name in the document's language, or its code when we do not know the name."""
    code = code.strip().upper()
    names = COUNTRY_NAMES.get(code)
    if names is None:
        return code
    return names[0] if language == "de" else names[1]


def default_language(home_country: str) -> str:
    return "de" if home_country.strip().upper() in GERMAN_COUNTRIES else "en"


def address_lines(*, company: str | None, person: str | None, street: str | None, postcode: str | None,
                  city: str | None, country: str | None, home_country: str, language: str | None = None) -> list[str]:
    """The address block of DIN 5008: company, person, street, postcode and town; abroad, the country in capitals
    on the last line (named in ``language``, by default the language of ``home_country``)."""
    home = home_country.strip().upper()
    abroad = _clean(country).upper()
    if abroad == home:
        abroad = ""
    postcode, city = _clean(postcode), _clean(city)
    # British addresses put the postcode on its own line below the town
    place = [city, postcode] if abroad == "GB" else [f"{postcode} {city}".strip()]
    lines = [_clean(company), _clean(person), _clean(street), *place]
    if abroad:
        lines.append(country_name(abroad, language or default_language(home)).upper())
    return [line for line in lines if line]


def _has_address(holder: Company | Contact) -> bool:
    return bool(_clean(holder.street) or _clean(holder.postcode) or _clean(holder.city))


def recipient_address(contact: Contact | None, company: Company | None, home_country: str,
                      language: str | None = None) -> list[str]:
    """Where a quote goes: the company's billing address with the person as "z. Hd." line when there are both,
    else the person's own address. A company without any address borrows the person's."""
    language = language or (contact.language if contact is not None else None) or default_language(home_country)
    person = ""
    if contact is not None:
        person = person_line(contact.salutation, contact.title, contact.name, language)
    if company is not None:
        holder: Company | Contact = company
        if not _has_address(company) and contact is not None and _has_address(contact):
            holder = contact
        if person:
            person = f"{'z. Hd.' if language == 'de' else 'Attn.'} {person}"
        return address_lines(company=company.name, person=person, street=holder.street, postcode=holder.postcode,
                             city=holder.city, country=holder.country, home_country=home_country,
                             language=language)
    if contact is None:
        return []
    return address_lines(company=None, person=person, street=contact.street, postcode=contact.postcode,
                         city=contact.city, country=contact.country, home_country=home_country, language=language)
