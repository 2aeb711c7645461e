"""The quote editor: a draft's lines (product or free text, quantity, unit, price, discount, VAT), its texts and
live totals; a frozen quote read-only with "new version"; finalise, PDF, send by mail, accept, decline; versions.

The lines are form fields in document order (``line_text`` …, one of each per row), so the form works as a plain
form too; quote_editor.js only adds, removes and moves rows, searches products and asks /quotes/<id>/totals for
the totals: all money is computed here by sales.totals, none in the browser."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.correspondence.service import FileUpload, MailDraft
from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.inputs import NOT_GIVEN
from crm_inbox.models import (
    Company,
    Contact,
    Direction,
    Interaction,
    InteractionContact,
    InteractionKind,
    InteractionOpportunity,
    Opportunity,
    Order,
    Quote,
    QuoteState,
)
from crm_inbox.sales import quote_lines
from crm_inbox.sales import quotes as service
from crm_inbox.sales.inputs import LineFields, QuoteChanges
from crm_inbox.sales.letters import greeting
from crm_inbox.sales.totals import Totals, compute, money
from web.auth import editor_id
from web.downloads import pdf_response
from web.pages.blueprint import pages
from web.pages.sales_forms import (
    date_value,
    decimal_value,
    error_text,
    format_money_filter,
    id_value,
    language,
    text,
)
from web.requestdb import after_commit, db, row_or_404, state

LINE_FIELDS = ("text", "product_id", "quantity", "unit", "unit_price", "discount", "vat", "description")
MAX_LINES = quote_lines.MAX_LINES
EDITABLE = (QuoteState.DRAFT,)
NEW_VERSION_FROM = (QuoteState.FINAL, QuoteState.SENT)
# The mail goes out in the quote's language, whatever the reader's interface speaks.
MAIL_TEXTS = {
    "de": ("Angebot", "anbei erhalten Sie unser Angebot{label}. Wir freuen uns auf Ihre Rückmeldung.",
           "Mit freundlichen Grüßen"),
    "en": ("Quote", "please find attached our quote{label}. We look forward to hearing from you.", "Kind regards"),
}


def lines_from_form(form: MultiDict[str, str]) -> tuple[LineFields, ...]:
    """The rows in the order the page shows them; a row with neither text nor product is left out."""
    columns = {name: form.getlist(f"line_{name}") for name in LINE_FIELDS}
    count = max((len(values) for values in columns.values()), default=0)
    if count > MAX_LINES:
        raise ValidationError("lines", _("at most %(count)d lines", count=MAX_LINES))
    out: list[LineFields] = []
    for i in range(count):
        row = {name: (values[i] if i < len(values) else "").strip() for name, values in columns.items()}
        if not row["text"] and not row["product_id"]:
            continue
        where = f"line {len(out) + 1} "
        quantity = decimal_value(row["quantity"], where + "quantity")
        out.append(LineFields(
            text=row["text"] or None, product_id=id_value(row["product_id"], where + "product"),
            quantity=Decimal(1) if quantity is None else quantity,
            unit=row["unit"] or None, unit_price=decimal_value(row["unit_price"], where + "price"),
            discount_percent=decimal_value(row["discount"], where + "discount") or Decimal(0),
            vat_rate=decimal_value(row["vat"], where + "VAT"), description=row["description"] or None))
    return tuple(out)


def totals_json(totals: Totals) -> dict[str, Any]:
    """Each amount twice: as the reader writes it (shown) and as a decimal string (for clients and tests)."""
    return {
        "line_nets": [format_money_filter(n) for n in totals.line_nets],
        "rates": [{"rate": f"{r.rate.normalize():f}", "net": format_money_filter(r.net),
                   "vat": format_money_filter(r.vat)} for r in totals.rates],
        "net": format_money_filter(totals.net), "vat": format_money_filter(totals.vat),
        "gross": format_money_filter(totals.gross),
        "values": {"net": money(totals.net), "vat": money(totals.vat), "gross": money(totals.gross)},
        "html": render_template("_quote_totals.html", totals=totals),  # the table as the page shows it
    }


def _back(quote_id: int) -> BaseResponse:
    return redirect(url_for("pages.quote", quote_id=quote_id))


def _failed(what: str, exc: Exception) -> None:
    db().rollback()
    why = error_text(exc) if isinstance(exc, ValidationError) else str(exc) or _("not possible in this state")
    flash(_("%(what)s: %(why)s", what=what, why=why))


def mail_defaults(quote: Quote, contact: Contact | None) -> dict[str, Any]:
    """The send form's prefill: the contact's first working address, "Angebot AN-…", greeting and a line."""
    lang = quote.language if quote.language in MAIL_TEXTS else "de"
    word, line, closing = MAIL_TEXTS[lang]
    label = quote.label if quote.number else ""
    hello = greeting(contact.salutation, contact.title, contact.name, lang) if contact \
        else greeting(None, None, None, lang)
    working = tuple(e.email for e in contact.emails if not e.bouncing) if contact else ()
    return {"to": working[0] if working else "", "recipients": working, "subject": f"{word} {label}".strip(),
            "text": f"{hello}\n\n{line.format(label=f' {label}' if label else '')}\n\n{closing}",
            "in_reply_to": last_inbound_mail(quote)}


def last_inbound_mail(quote: Quote) -> int | None:
    """The customer's newest mail on the deal, else the contact's: what the quote mail answers (its thread).
    Walked along the timeline indexes (link table by occurred_at), newest first."""
    links: list[tuple[Any, Any, Any]] = [(InteractionOpportunity, InteractionOpportunity.opportunity_id,
                                          quote.opportunity_id)]
    if quote.contact_id is not None:
        links.append((InteractionContact, InteractionContact.contact_id, quote.contact_id))
    for table, column, value in links:
        found = db().execute(select(Interaction.id).join(table, table.interaction_id == Interaction.id).where(
            column == value, Interaction.kind == InteractionKind.EMAIL, Interaction.direction == Direction.IN)
            .order_by(table.occurred_at.desc(), Interaction.id.desc()).limit(1)).scalar_one_or_none()
        if found is not None:
            return found
    return None


@pages.get("/quotes/<int:quote_id>")
def quote(quote_id: int) -> str:
    item = row_or_404(Quote, quote_id)
    opp = db().get(Opportunity, item.opportunity_id)
    contact = db().get(Contact, item.contact_id) if item.contact_id else None
    company = db().get(Company, item.company_id) if item.company_id else None
    return render_template(
        "quote.html", quote=item, opp=opp, contact=contact, company=company, totals=compute(item.lines),
        editable=item.state in EDITABLE, can_version=item.state in NEW_VERSION_FROM,
        versions=service.quote_versions(db(), item), rates=state().settings.sales.rates,
        mail=mail_defaults(item, contact), reader_language=language(),
        order=db().execute(select(Order).where(Order.quote_id == item.id).limit(1)).scalar_one_or_none()
        if item.state is QuoteState.ACCEPTED else None)


@pages.post("/quotes/<int:quote_id>/totals")
def quote_totals(quote_id: int) -> tuple[BaseResponse, int] | BaseResponse:
    """The editor's live totals for the lines as they stand in the form (nothing is saved), checked as saving
    checks them: what saving would refuse is an error text in the totals box (400), never a sum."""
    item = row_or_404(Quote, quote_id)
    known = {line.product_id for line in item.lines if line.product_id is not None}  # a retired product stays
    try:
        totals = quote_lines.preview(db(), state().settings, lines_from_form(request.form), known_products=known)
    except ValidationError as exc:
        return jsonify(error={"field": exc.field, "message": error_text(exc)}), 400
    return jsonify(totals_json(totals))


@pages.post("/quotes/<int:quote_id>")
def quote_save(quote_id: int) -> BaseResponse:
    by = editor_id()
    item = row_or_404(Quote, quote_id)
    form = request.form
    try:
        changes = QuoteChanges(
            lines=lines_from_form(form) if "line_text" in form or "lines_sent" in form else NOT_GIVEN,
            intro=text(form, "intro") if "intro" in form else NOT_GIVEN,
            terms=text(form, "terms") if "terms" in form else NOT_GIVEN,
            language=text(form, "language") if form.get("language") else NOT_GIVEN,
            valid_until=date_value(form.get("valid_until"), "valid_until") if "valid_until" in form else NOT_GIVEN)
        saved = service.update_quote(db(), state().settings, item, changes, by=by)
    except (ValidationError, Conflict) as exc:
        _failed(_("Not saved"), exc)
        return _back(quote_id)
    db().flush()
    flash(_("Saved."))
    return _back(saved.id)


@pages.post("/quotes/<int:quote_id>/new-version")
def quote_new_version(quote_id: int) -> BaseResponse:
    """A frozen quote's next version: a draft with the same lines, to be changed and sent again."""
    by = editor_id()
    item = row_or_404(Quote, quote_id)
    try:
        draft = service.update_quote(db(), state().settings, item, QuoteChanges(), by=by)  # lines copied
    except (ValidationError, Conflict) as exc:
        _failed(_("No new version"), exc)
        return _back(quote_id)
    db().flush()
    return _back(draft.id)


@pages.post("/quotes/<int:quote_id>/finalise")
def quote_finalise(quote_id: int) -> BaseResponse:
    by = editor_id()
    item = row_or_404(Quote, quote_id)
    try:
        done = service.finalise_quote(db(), state().settings, item, by=by)
    except (ValidationError, Conflict) as exc:
        _failed(_("Not finalised"), exc)
        return _back(quote_id)
    flash(_("Quote %(label)s finalised.", label=done.label))
    return _back(done.id)


@pages.get("/quotes/<int:quote_id>/pdf")
def quote_pdf(quote_id: int) -> BaseResponse:
    item = row_or_404(Quote, quote_id)
    try:
        content = service.quote_pdf(db(), state().settings, item)
    except NotFound:
        return _back(quote_id)
    return pdf_response(content, service.filename(item))


@pages.post("/quotes/<int:quote_id>/send")
def quote_send(quote_id: int) -> BaseResponse:
    by = editor_id()
    item = row_or_404(Quote, quote_id)
    form = request.form
    try:
        files = tuple(FileUpload(f.filename or "attachment", f.mimetype or "application/octet-stream", f.read())
                      for f in request.files.getlist("attachments") if f.filename)
        # The service numbers a draft and puts the number into the subject, as for the API.
        draft = MailDraft(to=text(form, "to") or "", subject=text(form, "subject") or "", text=form.get("text", ""),
                          attachments=files, contact_id=item.contact_id, company_id=item.company_id,
                          in_reply_to=id_value(form.get("in_reply_to"), "in_reply_to"))
        service.send_quote(db(), state().settings, item, draft, by=by)
    except (ValidationError, Conflict) as exc:
        _failed(_("Not sent"), exc)
        return _back(quote_id)
    after_commit(state().mail_queued)  # the outbox sender sends it now, not at its next round
    flash(_("Quote %(label)s sent.", label=item.label))
    return _back(item.id)


@pages.post("/quotes/<int:quote_id>/accept")
def quote_accept(quote_id: int) -> BaseResponse:
    by = editor_id()
    item = row_or_404(Quote, quote_id)
    try:
        order = service.accept_quote(db(), state().settings, item, by=by)
    except (ValidationError, Conflict) as exc:
        _failed(_("Not accepted"), exc)
        return _back(quote_id)
    db().flush()
    flash(_("Accepted: order %(number)s.", number=order.number))
    return redirect(url_for("pages.order", order_id=order.id))


@pages.post("/quotes/<int:quote_id>/decline")
def quote_decline(quote_id: int) -> BaseResponse:
    by = editor_id()
    item = row_or_404(Quote, quote_id)
    try:
        service.decline_quote(db(), state().settings, item, request.form.get("reason", "").strip(), by=by)
    except (ValidationError, Conflict) as exc:
        _failed(_("Not declined"), exc)
        return _back(quote_id)
    flash(_("Declined."))
    return _back(quote_id)

