"""Quotes (Angebote): a draft is edited in place; finalising or sending numbers it (``AN-2026-0001``, from the
counter row in the same transaction), freezes it with the customer's address and stores its PDF on the
timeline. Changing a final or sent quote makes the next version (``AN-2026-0001-2``) as a draft with the same
number; the older version is superseded once the new one is finalised. The customer's decision ends it:
accepted (an order), or declined (with a reason).

A numbered quote is a business letter and is never deleted; only drafts are.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_inbox import audit, events
from crm_inbox.config import Settings
from crm_inbox.correspondence.service import FileUpload, MailDraft, check, send_mail
from crm_inbox.db import affected
from crm_inbox.errors import Conflict, ValidationError
from crm_inbox.models import Contact, Interaction, Opportunity, Order, Quote, QuoteState, utcnow
from crm_inbox.sales import follow_up, letters, opportunities, orders, pdf
from crm_inbox.sales.inputs import NOT_GIVEN, QuoteChanges, QuoteFields
from crm_inbox.sales.numbers import QUOTE, next_number
from crm_inbox.sales.quote_lines import build_lines, checked_totals, copy_lines
from crm_inbox.sales.records import PDF, on_timeline, parties, store_document, stored_pdf, today
from crm_inbox.sales.totals import Totals, money
from crm_inbox.sales.values import long_text

LANGUAGES = ("de", "en")
QUOTE_SENT = "quote_sent"  # the stage a sent quote moves its deal to (when it is configured)
DECIDABLE = (QuoteState.FINAL, QuoteState.SENT)
MAX_REASON = 2000


def title(quote: Quote) -> str:
    """"Angebot AN-2026-0001" / "Quote AN-2026-0001-2": the document's subject and the mail's default one."""
    return f"{'Angebot' if quote.language == 'de' else 'Quote'} {quote.label}"


def filename(quote: Quote) -> str:
    """"Angebot_AN-2026-0001.pdf"; a first draft, which has no number yet, "Angebot_Entwurf_12.pdf"."""
    german = quote.language == "de"
    label = quote.label if quote.number else f"{'Entwurf' if german else 'draft'}_{quote.id}"
    return f"{'Angebot' if german else 'Quote'}_{label}.pdf"


def _language(settings: Settings, value: str | None, contact: Contact | None) -> str:
    if value is not None:
        if value not in LANGUAGES:
            raise ValidationError("language", "must be one of " + ", ".join(LANGUAGES))
        return value
    if contact is not None and contact.language in LANGUAGES:
        return contact.language
    return settings.company.language if settings.company.language in LANGUAGES else "de"


def _set_totals(quote: Quote, totals: Totals) -> None:
    quote.net_total, quote.vat_total, quote.gross_total = totals.net, totals.vat, totals.gross


def _opportunity(session: Session, quote: Quote) -> Opportunity:
    return session.get_one(Opportunity, quote.opportunity_id)


def quote_versions(session: Session, quote: Quote) -> list[Quote]:
    """All versions of the quote's number, oldest first (a first draft has no number: itself only)."""
    if quote.number is None:
        return [quote]
    return list(session.scalars(select(Quote).where(Quote.number == quote.number).order_by(Quote.version)))


def _newer(session: Session, quote: Quote) -> Quote | None:
    if quote.number is None:
        return None
    return session.scalars(select(Quote).where(Quote.number == quote.number, Quote.version > quote.version)
                           .order_by(Quote.version.desc()).limit(1)).first()


def create_quote(session: Session, settings: Settings, fields: QuoteFields, *, by: int | None) -> Quote:
    """A draft (version 1, no number yet) for the opportunity's customer."""
    opp = session.get(Opportunity, fields.opportunity_id)
    if opp is None:
        raise ValidationError("opportunity_id", "no such opportunity")
    if not opp.is_open:
        raise Conflict(f"the opportunity is {opp.stage}: it takes no new quote")
    contact, _ = parties(session, opp.contact_id, None)
    language = _language(settings, fields.language, contact)
    intro = long_text("intro", fields.intro)
    terms = long_text("terms", fields.terms)
    lines = build_lines(session, settings, fields.lines, language=language)
    totals = checked_totals(lines)
    quote = Quote(opportunity_id=opp.id, contact_id=opp.contact_id, company_id=opp.company_id, version=1,
                  state=QuoteState.DRAFT, language=language, intro=intro, terms=terms,
                  valid_until=fields.valid_until, address=[], created_by_id=by)
    quote.lines = lines
    _set_totals(quote, totals)
    session.add(quote)
    session.flush()
    opportunities.set_amount_from_quote(session, opp, totals.net, quote=quote, by=by)
    audit.record(session, by, "quote.create", "quote", quote.id,
                 {"opportunity_id": opp.id, "lines": len(lines), "net": money(totals.net)})
    return quote


def update_quote(session: Session, settings: Settings, quote: Quote, changes: QuoteChanges, *,
                 by: int | None) -> Quote:
    """Change a draft in place; a final or sent quote gets a new draft version (same number, version + 1, the
    lines copied, then changed), which is returned. Its validity starts again from its own date."""
    if quote.state not in (QuoteState.DRAFT, *DECIDABLE):
        raise Conflict(f"quote {quote.label} is {quote.state.value} and can no longer change")
    newer = _newer(session, quote)
    if newer is not None:
        raise Conflict(f"quote {quote.label} has a newer version ({newer.label}): change that one")
    contact, _ = parties(session, quote.contact_id, None)
    language = quote.language
    if changes.language is not NOT_GIVEN:
        language = _language(settings, changes.language, contact)
    intro = quote.intro if changes.intro is NOT_GIVEN else long_text("intro", changes.intro)
    terms = quote.terms if changes.terms is NOT_GIVEN else long_text("terms", changes.terms)
    known = {line.product_id for line in quote.lines if line.product_id is not None}
    lines = (None if changes.lines is NOT_GIVEN
             else build_lines(session, settings, changes.lines, language=language, known_products=known))
    totals = checked_totals(lines if lines is not None else quote.lines)

    target = quote
    if quote.state is QuoteState.DRAFT:
        # Still a draft? A colleague may have finalised it since it was read: its letter must not change.
        _claim(session, quote, (QuoteState.DRAFT,), QuoteState.DRAFT)
    else:
        target = Quote(opportunity_id=quote.opportunity_id, number=quote.number, version=quote.version + 1,
                       previous_id=quote.id, state=QuoteState.DRAFT, contact_id=quote.contact_id,
                       company_id=quote.company_id, valid_until=None, address=[], created_by_id=by)
        target.lines = copy_lines(quote.lines)
        session.add(target)
    target.language, target.intro, target.terms = language, intro, terms
    if changes.valid_until is not NOT_GIVEN:
        target.valid_until = changes.valid_until
    if lines is not None:
        target.lines = lines
    _set_totals(target, totals)
    try:
        session.flush()
    except IntegrityError as exc:  # a colleague made the same version at the same moment (number, version)
        raise Conflict(f"quote {quote.label} got a newer version meanwhile: change that one") from exc
    opportunities.set_amount_from_quote(session, _opportunity(session, target), totals.net, quote=target, by=by)
    action = "quote.update" if target is quote else "quote.new_version"
    audit.record(session, by, action, "quote", target.id,
                 {"number": target.label if target.number else None, "previous_id": target.previous_id,
                  "changed": [name for name in ("lines", "intro", "terms", "language", "valid_until")
                              if getattr(changes, name) is not NOT_GIVEN], "net": money(totals.net)})
    return target


def delete_draft(session: Session, quote: Quote, *, by: int | None) -> None:
    """Delete a draft (a first draft never had a number; a new version's draft leaves its number to the
    versions before). A numbered, final quote is a business letter: Conflict."""
    if quote.state is not QuoteState.DRAFT:
        raise Conflict(f"quote {quote.label} is {quote.state.value}: only drafts can be deleted")
    _claim(session, quote, (QuoteState.DRAFT,), QuoteState.DRAFT)  # not finalised meanwhile
    audit.record(session, by, "quote.delete", "quote", quote.id,
                 {"opportunity_id": quote.opportunity_id, "number": quote.number, "version": quote.version})
    session.delete(quote)
    session.flush()


def _render(session: Session, settings: Settings, quote: Quote) -> bytes:
    contact, company = parties(session, quote.contact_id, quote.company_id)
    return pdf.render(pdf.document_from_quote(quote, contact, company, settings), settings.company,
                      settings.instance_path)


def finalise_quote(session: Session, settings: Settings, quote: Quote, *, by: int | None) -> Quote:
    """Number (if it has none), date, validity and address, frozen; the PDF stored as a document on the
    customer's timeline and the deal's; the version before superseded. A final or sent quote is returned as
    it is."""
    if quote.state in DECIDABLE:
        return quote
    if quote.state is not QuoteState.DRAFT:
        raise Conflict(f"quote {quote.label} is {quote.state.value}")
    if not quote.lines:
        raise ValidationError("lines", "a quote needs at least one line")
    earlier = [v for v in quote_versions(session, quote) if v.version < quote.version]
    decided = [v for v in earlier if v.state in (QuoteState.ACCEPTED, QuoteState.DECLINED)]
    if decided:
        raise Conflict(f"quote {decided[0].label} was {decided[0].state.value} already")
    day = today(settings)
    if quote.valid_until is not None and quote.valid_until < day:
        raise ValidationError("valid_until", "must not lie before the quote's date")
    contact, company = parties(session, quote.contact_id, quote.company_id)
    opp = _opportunity(session, quote)

    _claim(session, quote, (QuoteState.DRAFT,), QuoteState.FINAL)  # one number and one document, also at once
    if quote.number is None:  # allocated here, in the caller's transaction: a rollback gives it back
        quote.number = next_number(session, QUOTE, settings.sales.quote_number_format, day)
    quote.quote_date = day
    quote.valid_until = quote.valid_until or day + timedelta(days=settings.company.quote_valid_days)
    quote.address = letters.recipient_address(contact, company, settings.company.country, quote.language)
    for older in earlier:
        if older.state in DECIDABLE:
            older.state = QuoteState.SUPERSEDED
    session.flush()
    document = store_document(
        session, opp, contact_id=quote.contact_id, company_id=quote.company_id, subject=title(quote),
        filename=filename(quote), content=_render(session, settings, quote), by=by, reason="quote document",
        details={"event": "quote.document", "quote_id": quote.id, "opportunity_id": opp.id,
                 "number": quote.label, "gross": money(quote.gross_total)})
    quote.document_id = document.id
    audit.record(session, by, "quote.finalise", "quote", quote.id,
                 {"number": quote.label, "document_id": document.id, "gross": money(quote.gross_total)})
    return quote


def quote_pdf(session: Session, settings: Settings, quote: Quote) -> bytes:
    """The stored PDF of a final quote; a draft (or a quote whose document was erased) rendered now."""
    return stored_pdf(session, quote.document_id) or _render(session, settings, quote)


def send_quote(session: Session, settings: Settings, quote: Quote, mail: MailDraft, *,
               by: int | None) -> Interaction:
    """Finalise if needed, then mail it with its PDF (unless the caller attached it already) from the CRM with
    the quote's number in the subject (appended unless named); the deal moves to "quote sent", its amount
    follows the quote, the follow-up starts and the earlier versions' follow-ups are done. Mail from the CRM
    is always a person's (``by``)."""
    if by is None:
        raise ValidationError("by", "a quote is sent by a staff user")
    if quote.state not in (QuoteState.DRAFT, *DECIDABLE):
        raise Conflict(f"quote {quote.label} is {quote.state.value} and cannot be sent")
    newer = _newer(session, quote)
    if newer is not None:
        raise Conflict(f"quote {quote.label} has a newer version ({newer.label})")
    draft = replace(mail, contact_id=mail.contact_id or quote.contact_id,
                    company_id=mail.company_id or quote.company_id)
    # The mail's rules (recipient, subject, text, sender) before the quote is numbered and frozen.
    check(session, settings, draft, by=by, opportunity_id=quote.opportunity_id)
    quote = finalise_quote(session, settings, quote, by=by)
    if quote.label not in draft.subject:  # the customer's reply names the quote (and finds the deal by it)
        draft = replace(draft, subject=f"{draft.subject.rstrip()} – {quote.label}")
    content = quote_pdf(session, settings, quote)
    if not any(a.content == content for a in draft.attachments):
        draft = replace(draft, attachments=(*draft.attachments, FileUpload(
            filename=filename(quote), content_type=PDF, content=content)))
    item = send_mail(session, settings, draft, by=by, opportunity_id=quote.opportunity_id, purpose="quote")

    quote.state = QuoteState.SENT
    quote.sent_at = utcnow()
    quote.sent_message_id = item.source_ref
    opp = _opportunity(session, quote)
    if opp.is_open and QUOTE_SENT in settings.sales.stage_probabilities:
        opportunities.advance_to(session, settings, opp, QUOTE_SENT, by=by)
    opportunities.set_amount_from_quote(session, opp, quote.net_total, quote=quote, by=by)
    session.flush()
    follow_up.start(session, settings, quote)
    earlier = [v.id for v in quote_versions(session, quote) if v.version < quote.version]
    if earlier:
        follow_up.settle(session, earlier, "a new version was sent", by=by)
    audit.record(session, by, "quote.send", "quote", quote.id,
                 {"number": quote.label, "interaction_id": item.id, "message_id": item.source_ref})
    _announce(session, quote, "quote.sent")
    return item


def _announce(session: Session, quote: Quote, event: str) -> None:
    """``quote.sent``, ``quote.accepted``, ``quote.declined`` for other systems (money as decimal strings)."""
    events.record(session, event, "quote", quote.id, {
        "id": quote.id, "number": quote.label, "opportunity_id": quote.opportunity_id, "contact_id": quote.contact_id,
        "company_id": quote.company_id, "total_net": str(quote.net_total), "total_gross": str(quote.gross_total),
        "currency": orders.CURRENCY, "state": quote.state.value})


def _claim(session: Session, quote: Quote, states: tuple[QuoteState, ...], to: QuoteState) -> None:
    """Move the quote from one of ``states`` to ``to`` as one conditional UPDATE: of two requests at once
    (a double click on "accept", two colleagues), the second waits for the first's commit (PostgreSQL's row
    lock; SQLite's single writer) and then finds the state changed: Conflict, never a second order."""
    claimed = affected(session.execute(
        update(Quote).where(Quote.id == quote.id, Quote.state.in_(states)).values(state=to)
        .execution_options(synchronize_session=False)))
    if not claimed:
        session.refresh(quote)
        raise Conflict(f"quote {quote.label} is {quote.state.value} now")
    quote.state = to
    session.flush()


def _decidable(quote: Quote) -> None:
    if quote.state not in DECIDABLE:
        what = {QuoteState.DRAFT: "a draft: finalise or send it first",
                QuoteState.SUPERSEDED: "superseded by a newer version"}.get(quote.state, quote.state.value)
        raise Conflict(f"quote {quote.label} is {what}")


def _decision(session: Session, quote: Quote, opp: Opportunity, event: str, subject: str, text: str | None,
              by: int | None, extra: dict[str, Any]) -> None:
    on_timeline(session, opp, contact_id=quote.contact_id, company_id=quote.company_id, subject=subject, text=text,
                by=by, details={"event": event, "quote_id": quote.id, "opportunity_id": opp.id,
                                "number": quote.label, **extra})


def accept_quote(session: Session, settings: Settings, quote: Quote, *, by: int | None) -> Order:
    """The customer accepted: the order with the same lines and its confirmation, the deal won, the contact a
    customer, the follow-ups done."""
    _decidable(quote)
    opp = _opportunity(session, quote)
    _claim(session, quote, DECIDABLE, QuoteState.ACCEPTED)
    quote.decided_at = utcnow()
    order = orders.order_from_quote(session, settings, quote, by=by)
    opportunities.set_amount_from_quote(session, opp, order.net_total, quote=quote, by=by)
    opportunities.mark_won(session, settings, opp, by=by)
    opportunities.make_customer(session, quote.contact_id, quote.company_id, by=by)
    follow_up.settle(session, [v.id for v in quote_versions(session, quote)], "the quote was accepted", by=by)
    _decision(session, quote, opp, "quote.accepted", f"Quote {quote.label} accepted: order {order.number}", None,
              by, {"order_id": order.id, "order_number": order.number})
    audit.record(session, by, "quote.accept", "quote", quote.id,
                 {"number": quote.label, "order_id": order.id, "order_number": order.number})
    _announce(session, quote, "quote.accepted")
    return order


def decline_quote(session: Session, settings: Settings, quote: Quote, reason: str, *, by: int | None) -> None:
    """The customer declined, for ``reason``: the deal is lost with it, the follow-ups done."""
    why = long_text("reason", reason, max_len=MAX_REASON)
    if why is None:
        raise ValidationError("reason", "say why the quote was declined")
    _decidable(quote)
    opp = _opportunity(session, quote)
    _claim(session, quote, DECIDABLE, QuoteState.DECLINED)
    quote.decided_at = utcnow()
    quote.decline_reason = why
    if opp.is_open:  # a deal won with another quote stays won
        opportunities.mark_lost(session, settings, opp, why, by=by)
    follow_up.settle(session, [v.id for v in quote_versions(session, quote)], "the quote was declined", by=by)
    _decision(session, quote, opp, "quote.declined", f"Quote {quote.label} declined", why, by, {"reason": why})
    audit.record(session, by, "quote.decline", "quote", quote.id, {"number": quote.label, "reason": why})
    _announce(session, quote, "quote.declined")
