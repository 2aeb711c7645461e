"""A person's consent over the API: the current state per channel, recording a change (append-only; audited by
the ledger) and the complete proof."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, jsonify, request

from crm_inbox.consent import double_opt_in, ledger, proof
from crm_inbox.consent.policy import may_receive
from crm_inbox.errors import ValidationError
from crm_inbox.models import Channel, ConsentRecord, Contact
from web.api import serialize as ser
from web.api.blueprint import api
from web.api.errors import fail, get_or_404, json_body
from web.auth import actor_id, require_token
from web.requestdb import after_commit, db, state

_INPUT = {"channel", "state", "legal_basis", "source", "proof", "occurred_at"}
_DOI_INPUT = {"address", "language", "source", "proof"}


def _record(row: ConsentRecord) -> dict[str, Any]:
    return {"id": row.id, "contact_id": row.contact_id, "channel": row.channel.value, "state": row.state.value,
            "legal_basis": row.legal_basis.value if row.legal_basis else None, "source": row.source,
            "proof": row.proof, "occurred_at": ser.when(row.occurred_at),
            "recorded_by_id": row.recorded_by_id, "recorded_at": ser.when(row.created_at)}


def _time(raw: Any) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > 64:
        raise ValidationError("occurred_at", "must be a date-time with a time zone (ISO 8601)")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("occurred_at", "must be a date-time with a time zone (ISO 8601)") from None
    if not 1900 <= value.year <= 2199:
        raise ValidationError("occurred_at", "must lie between the years 1900 and 2199")
    return value


@api.get("/contacts/<int:contact_id>/consent")
@require_token()
def contact_consent(contact_id: int) -> Response:
    """Per channel: the current state (unknown without a record), its legal basis, since when, and whether the
    ledger alone lets a campaign write (a campaign also checks orders, B2B and bouncing addresses)."""
    get_or_404(Contact, contact_id, "contact")
    channels = []
    for channel in Channel:
        consent = ledger.current(db(), [contact_id], channel)[contact_id]
        decision = may_receive(channel, consent)
        channels.append({"channel": channel.value, "state": consent.state.value if consent else "unknown",
                         "legal_basis": consent.basis.value if consent and consent.basis else None,
                         "since": ser.when(consent.occurred_at) if consent else None,
                         "objected": bool(consent and consent.objected), "ledger_allows": decision.allowed,
                         "basis": decision.basis, "reason": decision.reason})
    return jsonify(contact_id=contact_id, channels=channels)


@api.post("/contacts/<int:contact_id>/consent")
@require_token(write=True)
def record_consent(contact_id: int) -> Response:
    """Append a change of the person's consent for a channel (opted_in with its legal basis, or opted_out)."""
    get_or_404(Contact, contact_id, "contact")
    body = json_body()
    unknown = sorted(set(body) - _INPUT)
    if unknown:
        fail(400, "invalid", f"unknown field {unknown[0]!r}", field=unknown[0])
    for key in ("channel", "state", "source"):
        if not isinstance(body.get(key), str):
            fail(400, "invalid", "is required (a text)", field=key)
    if body.get("legal_basis") is not None and not isinstance(body["legal_basis"], str):
        fail(400, "invalid", "must be a text or null", field="legal_basis")
    evidence = body.get("proof")
    if evidence is not None and not isinstance(evidence, dict):
        fail(400, "invalid", "must be an object (what shows the consent: text, form, link id …)", field="proof")
    row = ledger.record(db(), contact_id, body["channel"], body["state"], body.get("legal_basis"), body["source"],
                        evidence or {}, occurred_at=_time(body.get("occurred_at")), actor=actor_id())
    response = jsonify(_record(row))
    response.status_code = 201
    return response


@api.get("/contacts/<int:contact_id>/consent/proof")
@require_token()
def consent_proof(contact_id: int) -> Response:
    """Every record per channel, oldest first, with who recorded it and what proves it."""
    get_or_404(Contact, contact_id, "contact")
    return jsonify(proof.history(db(), contact_id))


@api.post("/contacts/<int:contact_id>/consent/double-opt-in")
@require_token(write=True)
def request_double_opt_in(contact_id: int) -> Response:
    """Start a double opt-in for one of the person's e-mail addresses (a web form, a shop): recorded pending
    and the confirmation mail queued; only the person's click on its link opts them in."""
    get_or_404(Contact, contact_id, "contact")
    body = json_body()
    unknown = sorted(set(body) - _DOI_INPUT)
    if unknown:
        fail(400, "invalid", f"unknown field {unknown[0]!r}", field=unknown[0])
    if not isinstance(body.get("address"), str):
        fail(400, "invalid", "is required (one of the contact's e-mail addresses)", field="address")
    for key in ("language", "source"):
        if body.get(key) is not None and not isinstance(body[key], str):
            fail(400, "invalid", "must be a text or null", field=key)
    if body.get("language") not in (None, *double_opt_in.DOI_MAIL):
        fail(400, "invalid", f"must be one of {', '.join(double_opt_in.DOI_MAIL)} or null", field="language")
    evidence = body.get("proof")
    if evidence is not None and not isinstance(evidence, dict):
        fail(400, "invalid", "must be an object (how the person asked: the form, its IP …)", field="proof")
    settings = state().settings
    pending, queued = double_opt_in.send_confirmation(
        db(), settings, contact_id, body["address"], language=body.get("language"), actor=actor_id(),
        source=(body.get("source") or "").strip() or "api", proof=evidence or {},
        base_url=settings.web.base_url or request.host_url)
    if not queued:  # answering 400 rolls the pending record back as well
        fail(400, "invalid", "the outbox refused this address: no mail, nothing recorded", field="address")
    after_commit(state().mail_queued)  # the outbox sender sends it now, not at its next round
    response = jsonify(_record(pending))
    response.status_code = 201
    return response
