"""Double opt-in and one-click opt-out: signed links.

A token is ``<payload>.<mac>``: the payload is base64url JSON, the MAC an HMAC-SHA256 over it with the instance's
secret key (``instance_secret``: the key the web app signs its sessions with), separated by purpose so a token of
one kind is never accepted as the other. Nothing about a token is stored: the confirmation token names the pending
ledger record it confirms (its "token id"), the opt-out token the contact and the hash of the address the mail
went to. Changing the secret key invalidates every link sent so far.

- Confirmation (double opt-in, § 7(2) Nr. 2 UWG, Art. 7(1) GDPR: the sender proves the consent): expires after
  ``DOI_MAX_AGE``; a click appends ``opted_in`` with the proof (when asked, when confirmed, IP, browser, token
  id, address). A second click gives the same answer and appends nothing, also after expiry. A confirmation is
  refused when the person opted out after asking (the later wish wins: they ask again). It lifts a suppression
  of the address (an erased person who subscribes again).
- Opt-out (RFC 8058 one-click unsubscribe, § 7(3) Nr. 4 UWG, Art. 21(2) GDPR): never expires; ``unsubscribe``
  appends ``opted_out`` at once and is idempotent. When the contact is gone (erased) or its id now belongs to
  someone newer (SQLite reuses the ids of deleted rows), the address's hash goes on the suppression list instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_inbox import audit, outbox
from crm_inbox.config import Settings
from crm_inbox.consent import ledger
from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.models import Channel, ConsentRecord, ConsentState, Contact, LegalBasis, utcnow

DOI_MAX_AGE = timedelta(days=7)
CONFIRM_PATH = "/consent/confirm/"  # the public page the confirmation link opens (web/pages/public_consent.py)
MAX_TOKEN = 400  # ours are under 200 characters
_CONFIRM = "confirm"
_OPT_OUT = "opt-out"


def instance_secret(settings: Settings) -> str:
    """The secret key the web app signs with: ``[web] secret_key``, else the one it generated in the instance
    folder on its first start."""
    if settings.web.secret_key:
        return settings.web.secret_key
    path = settings.instance_path / "secret_key"
    if not path.exists():
        raise RuntimeError(f"no secret key: set [web] secret_key or start the web app once (it writes {path})")
    return path.read_text().strip()


# --- tokens ---

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, body: str) -> str:
    message = f"crm-inbox consent/{purpose}/{body}".encode()
    return _b64(hmac.new(secret.encode(), message, hashlib.sha256).digest())


def _sign(secret: str, purpose: str, payload: dict[str, Any]) -> str:
    if not secret:
        raise RuntimeError("signing a consent link needs the instance's secret key")
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_mac(secret, purpose, body)}"


def _open(secret: str, purpose: str, token: str) -> dict[str, Any]:
    """The payload of a token this instance signed for ``purpose``; anything else is not a valid link."""
    invalid = ValidationError("token", "this link is not valid (it may be cut off: open it from the mail again)")
    if not secret or not token or len(token) > MAX_TOKEN or token.count(".") != 1:
        raise invalid
    body, mac = token.split(".")
    if not hmac.compare_digest(mac.encode(), _mac(secret, purpose, body).encode()):
        raise invalid
    try:
        payload = json.loads(_unb64(body))
    except (binascii.Error, ValueError):
        raise invalid from None
    if not isinstance(payload, dict):
        raise invalid
    return payload


def _int(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError("token", "this link is not valid")
    return value


# --- double opt-in ---

def request_confirmation(session: Session, secret: str, contact_id: int, address: str, *, source: str,
                         proof: dict[str, Any] | None = None, actor: int | None = None,
                         max_age: timedelta = DOI_MAX_AGE) -> tuple[ConsentRecord, str]:
    """Record a pending double opt-in for the contact's e-mail ``address`` and return the confirmation token for
    the link in the mail (the caller sends the mail). ``proof``: how it was asked (the form, its IP)."""
    address = ledger.normalise(Channel.EMAIL, address or "")
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    if address not in {e.email.lower() for e in contact.emails}:
        raise ValidationError("address", "is not an address of this contact")
    expires = utcnow() + max_age
    row = ledger.record(session, contact_id, Channel.EMAIL, ConsentState.PENDING, LegalBasis.CONSENT, source,
                        {**(proof or {}), "address": address, "expires_at": expires.isoformat()}, actor=actor)
    token = _sign(secret, _CONFIRM, {"r": row.id, "c": contact_id, "x": int(expires.timestamp())})
    return row, token


# The mail asking to confirm, in the person's language (not the staff member's): no gettext here.
DOI_MAIL = {
    "de": ("Bitte bestätigen Sie Ihre Anmeldung",
           "Guten Tag,\n\nbitte bestätigen Sie, dass {company} Ihnen an {address} Informationen per E-Mail "
           "senden darf. Dazu genügt ein Klick auf diesen Link:\n\n{url}\n\nDer Link ist {days} Tage gültig. "
           "Wenn Sie das nicht möchten, ignorieren Sie diese E-Mail einfach: ohne Ihre Bestätigung schreiben wir "
           "Ihnen keine Werbung. Ihre Einwilligung können Sie jederzeit widerrufen.\n\n{company}\n"),
    "en": ("Please confirm your subscription",
           "Hello,\n\nplease confirm that {company} may send you information by e-mail at {address}. One click "
           "on this link is all it takes:\n\n{url}\n\nThe link is valid for {days} days. If you do not want "
           "this, simply ignore this mail: without your confirmation we send you no advertising. You may "
           "withdraw your consent at any time.\n\n{company}\n"),
}


def send_confirmation(session: Session, settings: Settings, contact_id: int, address: str, *,
                      language: str | None, actor: int | None, source: str, proof: dict[str, Any] | None = None,
                      base_url: str | None = None) -> tuple[ConsentRecord, bool]:
    """Start a double opt-in: record it pending (``request_confirmation``) and queue the mail with the
    confirmation link to ``address`` (one of the contact's). The mail is in ``language`` when we write that
    one, else the person's, else the company's (German). ``base_url``: the address people reach the CRM at
    (default ``[web] base_url``). Returns the pending record and whether the mail was queued (the outbox takes
    only one plain address); nothing is recorded when there is no address to link to or mail."""
    base = (base_url if base_url is not None else settings.web.base_url).rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise ValidationError("base_url", "the confirmation link needs the CRM's public address: set [web] base_url")
    if outbox.single_recipient(address or "") is None:
        raise ValidationError("address", "is not one plain e-mail address")
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    pending, token = request_confirmation(session, instance_secret(settings), contact_id, address, source=source,
                                          proof=proof, actor=actor)
    wanted = next((code for code in (language, contact.language, settings.company.language) if code in DOI_MAIL),
                  "de")
    subject, body = DOI_MAIL[wanted]
    to = str(pending.proof["address"])
    mail = outbox.enqueue(session, settings, purpose="double_opt_in", dedupe_key=f"double_opt_in:{pending.id}",
                          to=to, subject=subject, headers={"Auto-Submitted": "auto-generated"},
                          body=body.format(company=settings.company.name or settings.notifications.from_address,
                                           address=to, url=f"{base}{CONFIRM_PATH}{token}",
                                           days=DOI_MAX_AGE.days))
    return pending, mail is not None


@dataclass(frozen=True)
class Confirmation:
    record: ConsentRecord  # the opted_in record
    already: bool  # the link was clicked before: nothing new was recorded


def confirm(session: Session, secret: str, token: str, *, ip: str | None, user_agent: str | None = None,
            now: datetime | None = None) -> Confirmation:
    """The click on the confirmation link: append ``opted_in`` (consent) with the proof; the same answer again
    for a repeated click."""
    payload = _open(secret, _CONFIRM, token)
    pending_id, contact_id, expires = _int(payload, "r"), _int(payload, "c"), _int(payload, "x")
    pending = session.get(ConsentRecord, pending_id)
    if pending is None or pending.contact_id != contact_id or pending.state != ConsentState.PENDING:
        raise ValidationError("token", "this link is no longer valid")
    later = list(session.execute(select(ConsentRecord).where(
        ConsentRecord.contact_id == contact_id, ConsentRecord.channel == Channel.EMAIL,
        ConsentRecord.id > pending_id).order_by(ConsentRecord.id)).scalars())
    for row in later:
        if row.state == ConsentState.OPTED_IN and row.proof.get("token_id") == pending_id:
            return Confirmation(row, already=True)
    now = now or utcnow()
    if now > datetime.fromtimestamp(expires, UTC):
        raise ValidationError("token", "this link has expired: please subscribe again")
    if any(row.state == ConsentState.OPTED_OUT and row.occurred_at >= pending.occurred_at for row in later):
        raise Conflict("you unsubscribed after asking for this: please subscribe again")
    address = str(pending.proof.get("address") or "")
    proof = {"token_id": pending_id, "address": address, "requested_at": pending.occurred_at.isoformat(),
             "confirmed_at": now.isoformat(), "ip": ip, "user_agent": (user_agent or "")[:300] or None}
    if address and ledger.lift_suppression(session, Channel.EMAIL, address):
        proof["suppression_lifted"] = True
    row = ledger.record(session, contact_id, Channel.EMAIL, ConsentState.OPTED_IN, LegalBasis.CONSENT,
                        "double_opt_in", proof, occurred_at=now)
    return Confirmation(row, already=False)


# --- one-click opt-out ---

def opt_out_token(secret: str, contact_id: int, address: str | None = None, channel: Channel = Channel.EMAIL,
                  issued_at: datetime | None = None, campaign_id: int | None = None) -> str:
    """The token of a campaign mail's (or letter's) opt-out link; valid for ever. ``campaign_id``: the campaign
    the mail belongs to, so the opt-out is counted for that campaign only."""
    payload: dict[str, Any] = {"c": contact_id, "ch": channel.value, "t": int((issued_at or utcnow()).timestamp())}
    if address:
        payload["a"] = ledger.address_digest(channel, address)
    if campaign_id is not None:
        payload["k"] = campaign_id
    return _sign(secret, _OPT_OUT, payload)


@dataclass(frozen=True)
class Unsubscribed:
    channel: Channel
    record: ConsentRecord | None  # the opted_out record (new, or the one already there); None when suppressed
    already: bool  # the person had opted out already: nothing new was recorded
    suppressed: bool = False  # the contact is gone: its address went onto the suppression list
    campaign_id: int | None = None  # the campaign whose mail carried the link (from the token)


def unsubscribe(session: Session, secret: str, token: str, *, ip: str | None = None,
                now: datetime | None = None) -> Unsubscribed:
    """The one-click opt-out (the POST of RFC 8058; a GET only shows the page): ``opted_out`` at once."""
    payload = _open(secret, _OPT_OUT, token)
    contact_id, issued = _int(payload, "c"), _int(payload, "t")
    try:
        channel = Channel(str(payload.get("ch")))
    except ValueError:
        raise ValidationError("token", "this link is not valid") from None
    digest = payload.get("a") if isinstance(payload.get("a"), str) else None
    campaign_id = _int(payload, "k") if "k" in payload else None
    contact = session.get(Contact, contact_id)
    if contact is None or contact.created_at > datetime.fromtimestamp(issued + 1, UTC):
        added = digest is not None and ledger.suppress_digest(session, channel, digest, "unsubscribed")
        if added:
            audit.record(session, None, "unsubscribe", "consent_suppression", None, {"channel": channel.value})
        return Unsubscribed(channel, None, already=not added, suppressed=True, campaign_id=campaign_id)
    now = now or utcnow()
    consent = ledger.current(session, [contact_id], channel)[contact_id]
    if consent is not None and consent.state == ConsentState.OPTED_OUT:
        return Unsubscribed(channel, session.get(ConsentRecord, consent.record_id), already=True,
                            campaign_id=campaign_id)
    address = next((e.email for e in contact.emails if digest and ledger.address_digest(channel, e.email) == digest),
                   None)
    proof: dict[str, Any] = {"via": "one_click_link", "address": address, "ip": ip, "at": now.isoformat()}
    if campaign_id is not None:
        proof["campaign_id"] = campaign_id
    row = ledger.record(session, contact_id, channel, ConsentState.OPTED_OUT, None, "unsubscribe", proof,
                        occurred_at=now)
    return Unsubscribed(channel, row, already=False, campaign_id=campaign_id)
