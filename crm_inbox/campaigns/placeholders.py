"""The campaign's texts as templates: the placeholders a recipient fills in, rendered in a sandbox.

Subject and body are Jinja2 templates in a ``SandboxedEnvironment`` with ``StrictUndefined``: a misspelt
placeholder is an error when the campaign is saved (``check``), never a blank in 50,000 mails. The language is
kept small on purpose (placeholders, ``{% if %}``, a few text filters): no loops, no calls, no ``*`` or ``**``,
so a template cannot make one mail cost minutes or gigabytes, and the sandbox refuses attribute tricks
(``{{ ''.__class__ }}``).

The HTML part is made from the rendered text (escaped, paragraphs, line breaks, bare https URLs as links): no
tracking pixels, no rewritten links. The caller adds the footer (the notice of the right to object for
existing customers) and the opt-out link; ``opt_out_line`` and ``objection_notice`` are their texts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_inbox.campaigns import audience
from crm_inbox.config import Settings
from crm_inbox.errors import ValidationError
from crm_inbox.models import Company, Contact, ContactEmail, StaffUser
from crm_inbox.sales import letters

MAX_SUBJECT = 200
MAX_BODY = 20_000
MAX_OUTPUT = 200_000  # characters of one rendered text: far above any real mail, far below a memory problem
_CHUNK = 1000

# name -> "German / English" description, for the editor's help.
PLACEHOLDERS: dict[str, str] = {
    "greeting": "Die ganze Anrede-Zeile: „Sehr geehrte Frau Dr. Müller,“ / the whole greeting line: "
                "\"Dear Dr Müller,\"",
    "salutation": "Frau / Herr (englisch: Ms / Mr), leer wenn unbekannt / Ms or Mr, empty when unknown",
    "title": "Akademischer Titel wie erfasst („Dr.“) / academic title as recorded (\"Dr.\")",
    "first_name": "Vorname / first name",
    "last_name": "Nachname (mit „von“, „van“ …) / last name (with \"von\", \"van\" …)",
    "name": "Vor- und Nachname / full name",
    "company": "Firma / company",
    "owner": "Name des zuständigen Mitarbeiters / the name of the person's owner (staff)",
    "fields": "Freie Felder: {{ fields.branche }} oder {{ fields[\"Größe\"] }}; fehlt eins, bleibt es leer / "
              "free fields: {{ fields.branche }} or {{ fields[\"Größe\"] }}; a missing one is empty",
    "email": "E-Mail-Adresse, an die die Mail geht / the e-mail address the mail goes to",
    "city": "Ort (der Person, sonst der Firma) / city (the person's, else the company's)",
    "postcode": "Postleitzahl / postcode",
    "customer_number": "Kundennummer / customer number",
}
FILTERS = ("default", "d", "upper", "lower", "title", "capitalize", "trim")
# Template constructs a mail text needs; everything else (loops, calls, macros, includes, assignments,
# multiplication) is refused when the campaign is saved.
_ALLOWED_NODES = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.Getattr,
                  nodes.Getitem, nodes.If, nodes.Filter, nodes.Test, nodes.Compare, nodes.Operand, nodes.And,
                  nodes.Or, nodes.Not, nodes.CondExpr, nodes.Concat, nodes.Add, nodes.Keyword)
_URL = re.compile(r"https://[^\s<>\"']+")
_URL_TAIL = ".,;:!?)]}'"


class _Fields(dict[str, Any]):
    """A person's free fields: a field the person lacks renders empty (it is not a misspelt placeholder)."""

    def __missing__(self, key: str) -> str:
        return ""


class _SampleFields(dict[str, Any]):
    """At check time any field name is fine: which fields exist differs from person to person."""

    def __missing__(self, key: str) -> str:
        return f"[{key}]"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)
    env.globals.clear()  # no range(), lipsum(), dict(), cycler(), joiner(), namespace()
    env.filters = {name: env.filters[name] for name in FILTERS}
    return env


_ENV = _environment()


def sample(language: str = "de") -> dict[str, Any]:
    """Variables of an example person (the editor's preview without recipients, and ``check``)."""
    german = language == "de"
    return {
        "greeting": letters.greeting("frau", "Dr.", "Anna Müller", language),
        "salutation": "Frau" if german else "Ms", "title": "Dr.", "first_name": "Anna", "last_name": "Müller",
        "name": "Anna Müller", "company": "Beispiel GmbH", "owner": "Max Mustermann",
        "fields": _SampleFields(), "email": "anna.mueller@example.com", "city": "München", "postcode": "80331",
        "customer_number": "K-10001",
    }


def _refuse(tree: nodes.Template, field: str) -> None:
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValidationError(field, f"the template may use placeholders, {{% if %}} and the filters "
                                         f"{', '.join(FILTERS[:1] + FILTERS[2:])} only "
                                         f"(not {type(node).__name__.lower()})")
        if isinstance(node, nodes.Getattr | nodes.Getitem) and not (
                isinstance(node.node, nodes.Name) and node.node.name == "fields"):
            raise ValidationError(field, "only the free fields have parts: {{ fields.name }}")
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise ValidationError(field, f"access to {node.attr!r} is unsafe and refused")
        if isinstance(node, nodes.Getattr) and hasattr(dict, node.attr):  # {{ fields.items }}: the method
            raise ValidationError(field, f"write {{{{ fields[\"{node.attr}\"] }}}} for the field {node.attr!r}")
        if isinstance(node, nodes.Filter) and node.name not in FILTERS:
            raise ValidationError(field, f"unknown filter {node.name!r}")
        if isinstance(node, nodes.Filter) and node.name not in ("default", "d") and (node.args or node.kwargs):
            raise ValidationError(field, f"the filter {node.name!r} takes no arguments here")
    unknown = sorted(meta.find_undeclared_variables(tree) - set(PLACEHOLDERS))
    if unknown:
        raise ValidationError(field, f"unknown placeholder {unknown[0]!r} (known: {', '.join(PLACEHOLDERS)})")


def _parse(source: str, field: str) -> nodes.Template:
    try:
        return _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise ValidationError(field, f"template error in line {exc.lineno}: {exc.message}") from None


def check(subject: str, body: str) -> None:
    """Refuse a template that is broken, names an unknown placeholder or does what the sandbox refuses; the
    error names "subject" or "body". Both are also rendered for an example person, which finds what the parse
    cannot (``{{ ''.__class__ }}``, ``{{ name.upper }}``)."""
    for field, source in (("subject", subject), ("body", body)):
        _refuse(_parse(source, field), field)
        for language in ("de", "en"):
            try:
                _template(source).render(sample(language))
            except TemplateError as exc:
                raise ValidationError(field, f"template error: {exc.message or exc}") from None
            except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
                raise ValidationError(field, f"template error: {exc}") from None


@lru_cache(maxsize=64)
def _template(source: str) -> Any:
    # Compiled once per text: a campaign renders the same two templates for every recipient.
    return _ENV.from_string(source)


# --- the variables of real people ---

def _salutation_word(salutation: str | None, language: str) -> str:
    kind = (salutation or "").casefold()
    words = {"frau": ("Frau", "Ms"), "herr": ("Herr", "Mr")}.get(kind)
    return "" if words is None else words[0 if language == "de" else 1]


def _first_name(name: str | None) -> str:
    full, last = letters.full_name(name), letters.last_name(name)
    return full[: -len(last)].strip() if last and full.endswith(last) else ""


def facts(session: Session, settings: Settings, contact_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The template variables of each contact, loaded in bulk (three queries per 500 people). ``email`` is the
    first address that does not bounce (else the first); the greeting is in the person's language, else the
    company's default (``[company] language``)."""
    default_language = settings.company.language
    ids = sorted(set(contact_ids))
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        rows = session.execute(
            select(Contact.id, Contact.name, Contact.salutation, Contact.title, Contact.language, Contact.fields,
                   Contact.city, Contact.postcode, Contact.customer_number, Company.name, Company.city,
                   Company.postcode, Company.customer_number, StaffUser.name)
            .outerjoin(Company, Company.id == Contact.company_id)
            .outerjoin(StaffUser, StaffUser.id == Contact.owner_id)
            .where(audience.id_in(session, Contact.id, chunk))).all()
        addresses: dict[int, list[tuple[str, bool]]] = {}
        for contact_id, email, bouncing in session.execute(
                select(ContactEmail.contact_id, ContactEmail.email, ContactEmail.bouncing)
                .where(audience.id_in(session, ContactEmail.contact_id, chunk)).order_by(ContactEmail.id)):
            addresses.setdefault(contact_id, []).append((email, bool(bouncing)))
        emails = {contact_id: next((e for e, bouncing in found if not bouncing), found[0][0])
                  for contact_id, found in addresses.items()}
        for (contact_id, name, salutation, title, language, fields, city, postcode, number, company, company_city,
             company_postcode, company_number, owner) in rows:
            language = language if language in ("de", "en") else default_language
            out[contact_id] = {
                "greeting": letters.greeting(salutation, title, name, language),
                "salutation": _salutation_word(salutation, language),
                "title": title or "",
                "first_name": _first_name(name),
                "last_name": letters.last_name(name),
                "name": letters.full_name(name),
                "company": company or "",
                "owner": owner or "",
                "fields": _Fields(fields or {}),
                "email": emails.get(contact_id, ""),
                "city": city or company_city or "",
                "postcode": postcode or company_postcode or "",
                "customer_number": number or company_number or "",
                "language": language,
            }
    return out


# --- rendering ---

def opt_out_line(url: str, language: str = "de") -> str:
    return (f"Keine weiteren Mails? Abmelden: {url}" if language == "de"
            else f"No more mails? Unsubscribe: {url}")


def without_opt_out(text: str) -> str:
    """A rendered text without its opt-out line (and the separator, when nothing else is below it): what the
    timeline keeps, since the line's link opts the person out."""
    head, separator, tail = text.rpartition("\n-- \n")
    if not separator:
        return text
    prefixes = tuple(opt_out_line("", language).rstrip() for language in ("de", "en"))
    kept = [line for line in tail.split("\n") if not line.startswith(prefixes)]
    if not any(line.strip() for line in kept):
        return head.rstrip() + "\n"
    return head + separator + "\n".join(kept)


def objection_notice(language: str = "de") -> str:
    """§ 7(3) Nr. 4 UWG: mail to an existing customer says every time that they may object at any time, at no
    cost but the basic rates of transmission."""
    if language == "de":
        return ("Sie erhalten diese Mail als unser Kunde. Sie können der Verwendung Ihrer E-Mail-Adresse für "
                "Werbung jederzeit widersprechen, ohne dass hierfür andere als die Übermittlungskosten nach den "
                "Basistarifen entstehen.")
    return ("You receive this mail as our customer. You may object to the use of your e-mail address for "
            "advertising at any time, without any costs other than the transmission costs at the basic rates.")


def _linked(line: str) -> str:
    """One line escaped, its bare https URLs as links (found in the raw text, so "&lt;" never joins a URL)."""
    out: list[str] = []
    position = 0
    for match in _URL.finditer(line):
        url = match.group(0).rstrip(_URL_TAIL)
        out.append(escape(line[position:match.start()], quote=True))
        href = escape(url, quote=True)
        out.append(f'<a href="{href}">{href}</a>')
        position = match.start() + len(url)
    out.append(escape(line[position:], quote=True))
    return "".join(out)


def to_html(text: str) -> str:
    """Paragraphs (blank lines) as <p>, line breaks as <br>, bare https URLs as links; all of it escaped."""
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").strip("\n")) if p.strip()]
    return "\n".join("<p>" + "<br>\n".join(_linked(line) for line in p.split("\n")) + "</p>"
                     for p in paragraphs)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render(subject: str, body: str, variables: dict[str, Any], *, opt_out_url: str | None,
           footer: str | None = None, language: str = "de") -> Rendered:
    """The mail for one person: subject (one line), text, and HTML made from the text. Below the text, after
    the signature separator: ``footer`` (the caller's notice) and the opt-out line with ``opt_out_url``."""
    values = {**variables}
    if not isinstance(values.get("fields"), dict):
        values["fields"] = _Fields()
    elif not isinstance(values["fields"], _Fields | _SampleFields):
        values["fields"] = _Fields(values["fields"])
    try:
        rendered_subject = _template(subject).render(values)
        text = _template(body).render(values)
    except TemplateError as exc:  # check() refuses these when saving; a template saved before a change
        raise ValidationError("body", f"template error: {exc.message or exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        # What only a real person's values reach ({{ fields.a < 1 }} with a text in fields.a): this person's
        # mail cannot be made; an error naming the template, never a crash of the page or the start.
        raise ValidationError("body", f"template error: {exc}") from None
    if len(text) > MAX_OUTPUT or len(rendered_subject) > MAX_OUTPUT:
        raise ValidationError("body", "the rendered text is too long")
    text = text.replace("\r\n", "\n").rstrip() + "\n"
    html = to_html(text)
    tail = [part.strip() for part in (footer,) if part and part.strip()]
    if tail or opt_out_url:
        text += "\n-- \n"
        html += '\n<hr>\n<div style="font-size:smaller;color:#555">'
        for part in tail:
            text += part + "\n"
            html += to_html(part)
        if opt_out_url:
            text += opt_out_line(opt_out_url, language) + "\n"
            label = opt_out_line("", language).rstrip()
            href = escape(opt_out_url, quote=True)
            html += f'<p>{escape(label)} <a href="{href}">{href}</a></p>'
        html += "</div>"
    document = (f'<!DOCTYPE html>\n<html lang="{"de" if language == "de" else "en"}"><head>'
                f'<meta charset="utf-8"></head>\n<body>\n{html}\n</body></html>\n')
    return Rendered(subject=_one_line(rendered_subject)[:998], text=text, html=document)
