"""One opportunity (Verkaufschance): opening it from a contact or company, its master data, its quotes and its
own timeline (mail, calls, quotes, notes that belong to the deal)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.errors import BadCursor, Conflict, ValidationError
from crm_inbox.inputs import NOT_GIVEN
from crm_inbox.models import Company, Contact, Opportunity, OpportunitySource, StaffUser
from crm_inbox.sales import queries
from crm_inbox.sales.inputs import OpportunityChanges, OpportunityFields, QuoteFields
from crm_inbox.sales.opportunities import create_opportunity, opportunity_timeline, stages, update_opportunity
from crm_inbox.sales.quotes import create_quote
from web.auth import editor_id
from web.pages.blueprint import pages
from web.pages.sales_forms import date_value, decimal_value, error_text, id_arg, id_value, int_value, text
from web.requestdb import db, row_or_404, state

TIMELINE_PAGE = 25


def _staff() -> list[StaffUser]:
    return list(db().execute(select(StaffUser).where(StaffUser.active).order_by(StaffUser.name)).scalars())


def _party(raw: str | None, model: type[Contact] | type[Company]) -> int | None:
    """An id from the form or the link, when that contact or company exists."""
    ident = id_arg(raw)
    return ident if ident is not None and db().get(model, ident) is not None else None


@pages.get("/opportunities/new")
def opportunity_new() -> str:
    contact_id = _party(request.args.get("contact_id"), Contact)
    company_id = _party(request.args.get("company_id"), Company)
    contact = db().get(Contact, contact_id) if contact_id else None
    if contact is not None and company_id is None:
        company_id = contact.company_id
    company = db().get(Company, company_id) if company_id else None
    return render_template("opportunity.html", opp=None, contact=contact, company=company, staff=_staff(),
                           stages=stages(state().settings), sources=[s.value for s in OpportunitySource])


@pages.post("/opportunities/new")
def opportunity_create() -> BaseResponse:
    by = editor_id()
    form = request.form
    contact_id = _party(form.get("contact_id"), Contact)
    company_id = _party(form.get("company_id"), Company)
    back = url_for("pages.opportunity_new", contact_id=contact_id, company_id=company_id)
    try:
        fields = OpportunityFields(
            title=text(form, "title") or "", contact_id=contact_id, company_id=company_id,
            owner_id=id_value(form.get("owner_id"), "owner") or by,
            amount=decimal_value(form.get("amount"), "amount"),
            close_date=date_value(form.get("close_date"), "close_date"), stage=text(form, "stage"),
            probability=int_value(form.get("probability"), "probability"), source=text(form, "source") or "manual")
        opp = create_opportunity(db(), state().settings, fields, by=by)
    except ValidationError as exc:
        flash(_("Not created: %(why)s", why=error_text(exc)))
        return redirect(back)
    db().flush()
    return redirect(url_for("pages.opportunity", opportunity_id=opp.id))


@pages.get("/opportunities/<int:opportunity_id>")
def opportunity(opportunity_id: int) -> str:
    opp = row_or_404(Opportunity, opportunity_id)
    cursor = request.args.get("cursor") or None
    try:
        timeline = opportunity_timeline(db(), opp.id, limit=TIMELINE_PAGE, cursor=cursor)
    except BadCursor:
        abort(400, description="This timeline link is not valid.")
    contact = db().get(Contact, opp.contact_id) if opp.contact_id else None
    company = db().get(Company, opp.company_id) if opp.company_id else None
    owner = db().get(StaffUser, opp.owner_id) if opp.owner_id else None
    return render_template("opportunity.html", opp=opp, contact=contact, company=company, owner=owner,
                           staff=_staff(), stages=stages(state().settings),
                           sources=[s.value for s in OpportunitySource],
                           quotes=queries.quotes_for_opportunity(db(), opp.id), timeline=timeline, cursor=cursor)


def changes_from_form(opp: Opportunity, form: Any) -> OpportunityChanges:
    """Only what differs from the stored value: saving the form unchanged changes nothing, and an amount left as
    it is keeps following the quote."""
    wanted: dict[str, Any] = {}
    title = text(form, "title")
    if "title" in form and title != opp.title:
        wanted["title"] = title or ""
    if "stage" in form and (stage := text(form, "stage")) and stage != opp.stage:
        wanted["stage"] = stage
    if "probability" in form:
        probability = int_value(form.get("probability"), "probability")
        if probability is not None and probability != opp.probability:
            wanted["probability"] = probability
    if "amount" in form:
        amount = decimal_value(form.get("amount"), "amount")
        if amount != opp.amount:
            wanted["amount"] = amount
    if "close_date" in form:
        close_date = date_value(form.get("close_date"), "close_date")
        if close_date != opp.close_date:
            wanted["close_date"] = close_date
    if "owner_id" in form:
        owner_id = id_value(form.get("owner_id"), "owner")
        if owner_id != opp.owner_id:
            wanted["owner_id"] = owner_id
    if "source" in form and (source := text(form, "source")) and source != opp.source.value:
        wanted["source"] = source
    if "lost_reason" in form and (reason := text(form, "lost_reason")) != opp.lost_reason \
            and (reason or opp.lost_reason):
        wanted["lost_reason"] = reason
    return OpportunityChanges(**{k: wanted.get(k, NOT_GIVEN) for k in (
        "title", "stage", "probability", "amount", "close_date", "owner_id", "source", "lost_reason")})


@pages.post("/opportunities/<int:opportunity_id>")
def opportunity_edit(opportunity_id: int) -> BaseResponse:
    by = editor_id()
    opp = row_or_404(Opportunity, opportunity_id)
    try:
        changes = changes_from_form(opp, request.form)
        if changes == OpportunityChanges():
            flash(_("Nothing changed."))
        else:
            update_opportunity(db(), state().settings, opp, changes, by=by)
            flash(_("Saved."))
    except ValidationError as exc:
        db().rollback()
        flash(_("Not saved: %(why)s", why=error_text(exc)))
    except Conflict as exc:
        db().rollback()
        flash(_("Not saved: %(why)s", why=str(exc)))
    return redirect(url_for("pages.opportunity", opportunity_id=opportunity_id))


@pages.post("/opportunities/<int:opportunity_id>/quotes")
def opportunity_new_quote(opportunity_id: int) -> BaseResponse:
    by = editor_id()
    opp = row_or_404(Opportunity, opportunity_id)
    try:
        quote = create_quote(db(), state().settings, QuoteFields(opportunity_id=opp.id), by=by)
    except (ValidationError, Conflict) as exc:
        flash(_("No quote created: %(why)s",
                why=error_text(exc) if isinstance(exc, ValidationError) else str(exc)))
        return redirect(url_for("pages.opportunity", opportunity_id=opportunity_id))
    db().flush()
    return redirect(url_for("pages.quote", quote_id=quote.id))
