"""Consent on the contact page (staff side): per channel the current state and its legal basis, recording an
opt-in (basis, source, proof) or an opt-out, sending the double opt-in mail, and the printable proof.

The ledger (crm_inbox.consent) checks and audits every record; here forms become calls and errors messages. The
contact page includes ``_consent.html``, which asks ``consent_panel(contact)`` for what it shows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.consent import double_opt_in, ledger, proof
from crm_inbox.consent.policy import may_receive
from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.models import Channel, ConsentState, Contact, LegalBasis
from web.auth import current_user, editor_id
from web.i18n import N_
from web.pages.blueprint import pages
from web.pages.consent_labels import reason_label
from web.requestdb import after_commit, db, row_or_404, state

log = logging.getLogger(__name__)

MAX_PROOF_TEXT = 5000
CHANNEL_LABELS = {"email": N_("E-mail"), "letter": N_("Letter"), "phone": N_("Phone")}
STATE_LABELS = {"unknown": N_("unknown"), "pending": N_("double opt-in pending"), "opted_in": N_("opted in"),
                "opted_out": N_("opted out")}
BASIS_LABELS = {"consent": N_("consent"), "existing_customer": N_("existing customer (§ 7(3) UWG)"),
                "presumed_consent": N_("presumed consent (business, phone)"),
                "legitimate_interest": N_("legitimate interest (Art. 6(1)(f) GDPR)")}
SOURCE_SUGGESTIONS = ("staff", "phone_call", "letter", "fair", "web_form", "contract")


@dataclass(frozen=True)
class ChannelConsent:
    channel: str
    state: str  # unknown, pending, opted_in, opted_out
    basis: str | None
    since: datetime | None
    allowed: bool  # what the ledger alone allows (a campaign also checks orders, B2B, bounces)
    note: str  # the basis or the reason, in words


@dataclass(frozen=True)
class ConsentPanel:
    contact_id: int
    channels: list[ChannelConsent]
    emails: list[str]


def basis_label(basis: str | None) -> str:
    return _(BASIS_LABELS[basis]) if basis in BASIS_LABELS else (basis or "—")


@pages.context_processor
def _consent_labels() -> dict[str, Any]:
    return {"consent_channel_label": lambda c: _(CHANNEL_LABELS.get(c, c)),
            "consent_state_label": lambda s: _(STATE_LABELS.get(s, s)),
            "consent_basis_label": basis_label}


@pages.app_template_global()
def consent_panel(contact: Contact) -> ConsentPanel:
    """What the contact page's consent panel shows (``_consent.html``)."""
    channels = []
    for channel in Channel:
        consent = ledger.current(db(), [contact.id], channel)[contact.id]
        decision = may_receive(channel, consent)
        channels.append(ChannelConsent(
            channel.value, consent.state.value if consent else "unknown",
            consent.basis.value if consent and consent.basis else None, consent.occurred_at if consent else None,
            decision.allowed, basis_label(decision.basis) if decision.allowed else reason_label(decision.reason)))
    return ConsentPanel(contact.id, channels, sorted(e.email for e in contact.emails))


def _back(contact_id: int) -> BaseResponse:
    return redirect(url_for("pages.contact", contact_id=contact_id) + "#consent")


def _when(raw: str) -> datetime | None:
    """The form's date (when the person gave or withdrew consent) at noon in the office's time zone; None: now."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ValidationError("occurred_at", "must be a date (YYYY-MM-DD)") from None
    if not 1900 <= day.year <= 2199:
        raise ValidationError("occurred_at", "must lie between the years 1900 and 2199")
    return datetime.combine(day, time(12), tzinfo=ZoneInfo(state().settings.reminders.timezone))


def _error(exc: ValidationError | Conflict) -> str:
    if isinstance(exc, ValidationError):
        return _("%(field)s: %(why)s", field=exc.field.replace("_", " "), why=exc.message)
    return str(exc)


@pages.post("/contacts/<int:contact_id>/consent")
def consent_record(contact_id: int) -> BaseResponse:
    """Record an opt-in (with its legal basis) or an opt-out for one channel, with how it came and its proof."""
    by = editor_id()
    row_or_404(Contact, contact_id)
    form = request.form
    wanted = form.get("state", "")
    text = form.get("proof", "").strip()
    try:
        if len(text) > MAX_PROOF_TEXT:
            raise ValidationError("proof", f"must be at most {MAX_PROOF_TEXT} characters")
        basis = form.get("legal_basis") or None if wanted == ConsentState.OPTED_IN else None
        row = ledger.record(db(), contact_id, form.get("channel", ""), wanted, basis,
                            form.get("source", "").strip() or "staff", {"text": text} if text else {},
                            occurred_at=_when(form.get("occurred_at", "")), actor=by)
    except (ValidationError, Conflict) as exc:
        db().rollback()
        log.info("consent for contact %s not recorded: %s", contact_id, exc)
        flash(_("Consent not recorded: %(why)s", why=_error(exc)))
        return _back(contact_id)
    flash(_("%(channel)s: %(state)s recorded.", channel=_(CHANNEL_LABELS[row.channel.value]),
            state=_(STATE_LABELS[row.state.value])))
    return _back(contact_id)


def public_base() -> str:
    """Where the people we write to reach the CRM: ``[web] base_url`` when set, else this request's address."""
    return state().settings.web.base_url.rstrip("/") or request.host_url.rstrip("/")


@pages.post("/contacts/<int:contact_id>/consent/double-opt-in")
def consent_double_opt_in(contact_id: int) -> BaseResponse:
    """Record a pending double opt-in for one of the person's addresses and mail them the confirmation link;
    only their click opts them in (crm_inbox.consent.double_opt_in)."""
    by = editor_id()
    row_or_404(Contact, contact_id)
    user = current_user()
    try:
        pending, queued = double_opt_in.send_confirmation(
            db(), state().settings, contact_id, request.form.get("address", ""), language=None, actor=by,
            source="staff", proof={"asked_by": user.name if user else None, "via": "contact page"},
            base_url=public_base())
    except (ValidationError, NotFound) as exc:
        db().rollback()
        flash(_("No confirmation mail sent: %(why)s",
                why=_error(exc) if isinstance(exc, ValidationError) else str(exc)))
        return _back(contact_id)
    to = str(pending.proof["address"])
    if not queued:
        db().rollback()  # no mail, so no pending record either
        log.warning("double opt-in mail to %r for contact %s not queued", to, contact_id)
        flash(_("No confirmation mail sent: the outbox refused the address %(address)s.", address=to))
        return _back(contact_id)
    after_commit(state().mail_queued)  # the outbox sender sends it now, not at its next round
    flash(_("Confirmation mail queued to %(address)s: the person is opted in when they click its link.",
            address=to))
    return _back(contact_id)


@pages.get("/contacts/<int:contact_id>/consent/proof")
def consent_proof(contact_id: int) -> str:
    """Every consent record of the person per channel, when, how, from where and what proves it: printable."""
    history = proof.history(db(), contact_id) if row_or_404(Contact, contact_id) else {}
    for channel in history["channels"]:
        channel["note"] = basis_label(channel["basis"]) if channel["ledger_allows"] else reason_label(channel["reason"])
    return render_template("consent_proof.html", history=history, legal_bases=[b.value for b in LegalBasis])
