"""The contact list: everybody by name, the search over names, companies, addresses and numbers, search as
you type (its exports are in web/pages/exports.py)."""

from __future__ import annotations

from flask import Response, jsonify, render_template, request
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import selectinload

from crm_inbox.contacts.listing import companies_page, contacts_page
from crm_inbox.contacts.search import (
    MAX_QUERY,
    company_matches,
    contact_matches,
    contacts_by_name,
    query_text,
)
from crm_inbox.erp.overdue import overdue_of_people
from crm_inbox.erp.overdue import today as erp_today
from crm_inbox.errors import ValidationError
from crm_inbox.models import Contact
from web.pages.blueprint import pages
from web.requestdb import db, state

PAGE_SIZE = 50
SUGGESTIONS = 8


def contact_search(q: str) -> ColumnElement[bool]:
    """The one contact search (crm_inbox.contacts.search), with this installation's phone region."""
    return contact_matches(q, state().settings.phone.default_region)


def search_query() -> str:
    """``?q=`` as typed; a ValidationError when it is longer than anybody types (see crm_inbox.contacts.search)."""
    return query_text(request.args.get("q"))


def too_long_text() -> str:
    return _("The search is too long: at most %(count)d characters.", count=MAX_QUERY)


def page_number() -> int:
    raw = request.args.get("page", "1")
    return min(int(raw), 100_000) if raw.isdigit() and int(raw) > 0 else 1


@pages.get("/contacts")
def contacts() -> str | tuple[str, int]:
    try:
        q = search_query()
    except ValidationError:
        return render_template("contacts.html", contacts=[], companies=[], q="", page=1, has_next=False,
                               owed={}, error=too_long_text()), 400
    page = page_number()
    rows, has_next = contacts_page(db(), contact_search(q) if q else None, page, PAGE_SIZE)
    firms = companies_page(db(), company_matches(q), 1, 20)[0] if q and page == 1 else []
    # The debtor mark of the whole page in one query (crm_inbox.erp.overdue), not one per row.
    owed = overdue_of_people(db(), erp_today(state().settings), [row.contact.id for row in rows])
    return render_template("contacts.html", contacts=rows, companies=firms, q=q, page=page,
                           has_next=has_next, owed=owed, error=None)


@pages.get("/contacts/suggest")
def contact_suggest() -> Response | tuple[Response, int]:
    """Search as you type: the first contacts that match, for a field that asks "which contact?"."""
    try:
        q = search_query()
    except ValidationError:
        return jsonify({"items": [], "error": too_long_text()}), 400
    rows = db().execute(contacts_by_name(
        select(Contact).where(contact_search(q)).options(selectinload(Contact.emails), selectinload(Contact.company))
    ).limit(SUGGESTIONS)).scalars().all() if len(q) >= 2 else []
    items = [{"id": c.id, "label": " · ".join(filter(None, [
        c.display_name, c.company.name if c.company else None, c.emails[0].email if c.emails else None]))}
        for c in rows]
    return jsonify({"items": items})

