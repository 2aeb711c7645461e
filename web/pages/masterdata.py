"""Editing master data from the pages' forms: a person's company typed by name, free fields as
"Key: value" lines, and the company page's own edit form."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.contacts.inputs import NOT_GIVEN, CompanyChanges, ContactChanges, NotGiven
from crm_inbox.contacts.service import company_named, update_company, update_contact
from crm_inbox.errors import Conflict, ValidationError
from crm_inbox.models import Company, Contact
from crm_inbox.models.contacts import search_key
from web.auth import editor_id
from web.pages.blueprint import pages
from web.requestdb import db, row_or_404, state


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def free_fields(text: str) -> dict[str, Any]:
    """ "Key: value" per line (the first colon splits); a line without a colon is refused, not guessed."""
    fields: dict[str, Any] = {}
    for line in lines(text):
        key, colon, value = line.partition(":")
        if not colon or not key.strip():
            raise ValidationError("fields", f"{line!r} is not “Key: value”")
        if len(key.strip()) > 100 or len(value.strip()) > 2000:
            raise ValidationError("fields", "a key must be at most 100 characters, a value at most 2000")
        fields[key.strip()] = value.strip()
    return fields


@pages.app_template_filter("fields_text")
def fields_text(fields: dict[str, Any]) -> str:
    return "\n".join(f"{key}: {'' if value is None else value}" for key, value in fields.items())


def company_of(text: str, person: Contact, by: int) -> int | None:
    """The company field of a person's form: empty for none, their company while its name stands, else the
    company of that name (made if new, audited by the service)."""
    if not text.strip():
        return None
    if person.company is not None and search_key(person.company.name) == search_key(text):
        return person.company.id
    return company_named(db(), text, by)[0].id


def tag_list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def optional(name: str) -> str | NotGiven | None:
    """A one-line field of the form: empty clears it; missing (a form of an older page) leaves it."""
    if name not in request.form:
        return NOT_GIVEN
    return request.form[name].strip() or None


ADDRESS = ("street", "postcode", "city", "country")


@pages.post("/contacts/<int:contact_id>/edit")
def contact_edit(contact_id: int) -> BaseResponse:
    """Master data from the page's edit form: one address or number per line, tags separated by commas."""
    by = editor_id()
    person = row_or_404(Contact, contact_id)
    form = request.form

    owner = form.get("owner_id", "")
    try:
        changes = ContactChanges(
            name=form.get("name", "").strip() or None, role=form.get("role") or "lead",
            category=form.get("category") or None, tags=tag_list(form.get("tags", "")),
            emails=tuple(lines(form.get("emails", ""))), phones=tuple(lines(form.get("phones", ""))),
            owner_id=int(owner) if owner.isascii() and owner.isdigit() and len(owner) < 12 else None,
            # Only what the form has: a form of an older page (or a script) without them leaves them as they are.
            fields=free_fields(form["fields"]) if "fields" in form else NOT_GIVEN,
            company_id=company_of(form["company"], person, by) if "company" in form else NOT_GIVEN,
            salutation=optional("salutation"), title=optional("title"), language=optional("language"),
            customer_number=optional("customer_number"), **{key: optional(key) for key in ADDRESS})
        update_contact(db(), person, changes, state().settings.phone.default_region, by)
    except ValidationError as exc:
        db().rollback()
        flash(_("Not saved: %(field)s %(why)s", field=exc.field, why=exc.message))
        return redirect(url_for("pages.contact", contact_id=contact_id))
    flash(_("Saved."))
    return redirect(url_for("pages.contact", contact_id=contact_id))


@pages.post("/companies/<int:company_id>/edit")
def company_edit(company_id: int) -> BaseResponse:
    by = editor_id()
    firm = row_or_404(Company, company_id)
    form = request.form
    try:
        changes = CompanyChanges(
            name=form.get("name", "").strip(), industry=form.get("industry", "").strip() or None,
            size=form.get("size", "").strip() or None, customer_type=form.get("customer_type") or None,
            category=form.get("category") or None, tags=tag_list(form.get("tags", "")),
            domains=tuple(lines(form.get("domains", ""))), phones=tuple(lines(form.get("phones", ""))),
            fields=free_fields(form.get("fields", "")), customer_number=optional("customer_number"),
            **{key: optional(key) for key in ADDRESS}, **{f"delivery_{key}": optional(f"delivery_{key}")
                                                           for key in ADDRESS})
        update_company(db(), firm, changes, state().settings.phone.default_region, by)
    except (ValidationError, Conflict) as exc:
        db().rollback()
        field, why = (exc.field, exc.message) if isinstance(exc, ValidationError) else ("domains", str(exc))
        flash(_("Not saved: %(field)s %(why)s", field=field, why=why))
        return redirect(url_for("pages.company", company_id=company_id))
    flash(_("Saved."))
    return redirect(url_for("pages.company", company_id=company_id))
