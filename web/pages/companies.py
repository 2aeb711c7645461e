"""Companies: the list of all or of those a search finds (name, domains, people, last contact) and one
company's page with everyone's timeline."""

from __future__ import annotations

from flask import abort, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from crm_inbox.contacts.listing import companies_page, people_of
from crm_inbox.contacts.search import company_matches
from crm_inbox.erp.overdue import overdue_of_companies
from crm_inbox.erp.overdue import today as erp_today
from crm_inbox.errors import BadCursor, ValidationError
from crm_inbox.models import Category, Company, Contact, CustomerType
from crm_inbox.timeline.service import company_timeline
from web.pages.blueprint import pages
from web.pages.contacts import page_number, search_query, too_long_text
from web.requestdb import db, state

TIMELINE_PAGE = 25
PAGE_SIZE = 50


@pages.get("/companies")
def companies() -> str | tuple[str, int]:
    try:
        q = search_query()
    except ValidationError:
        return render_template("companies.html", companies=[], q="", page=1, has_next=False,
                               owed={}, error=too_long_text()), 400
    page = page_number()
    rows, has_next = companies_page(db(), company_matches(q) if q else None, page, PAGE_SIZE)
    owed = overdue_of_companies(db(), erp_today(state().settings), [row.company.id for row in rows])
    return render_template("companies.html", companies=rows, q=q, page=page, has_next=has_next, owed=owed,
                           error=None)


@pages.get("/companies/<int:company_id>")
def company(company_id: int) -> str:
    firm = db().get(Company, company_id, options=[selectinload(Company.domains), selectinload(Company.phones)])
    if firm is None:
        abort(404)
    people = db().execute(
        select(Contact).where(Contact.company_id == company_id).options(selectinload(Contact.emails))
        .order_by(Contact.search_name.is_(None), Contact.search_name, Contact.id)).scalars().all()
    cursor = request.args.get("cursor") or None
    try:
        timeline = company_timeline(db(), company_id, limit=TIMELINE_PAGE, cursor=cursor)
    except BadCursor:
        abort(400, description="This timeline link is not valid.")
    # Each entry names whom it is about: everybody's mail is in one list here.
    about = people_of(db(), [item.id for item in timeline.items])
    return render_template("company.html", company=firm, people=people, timeline=timeline, cursor=cursor, about=about,
                           categories=[c.value for c in Category], customer_types=[t.value for t in CustomerType])
