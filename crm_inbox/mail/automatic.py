"""Automatic mail (RFC 3834 and its de-facto relatives): out-of-office replies, bounces, lists, bulk.

Such mail is recorded for known people only: it never creates a lead, never opens a ticket and is
never answered.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm_inbox.mail.addresses import normalise_email
from crm_inbox.mail.parse import Message, ParsedMail, header_str, part_text

_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply", "auto-reply"})


@dataclass(frozen=True)
class Automatic:
    reason: str
    bounced: tuple[str, ...] = ()  # recipients a delivery status notification reports as failed


def detect_automatic(mail: ParsedMail, envelope_from: str | None) -> Automatic | None:
    msg = mail.message
    ctype = msg.get_content_type()
    if ctype == "multipart/report":
        return Automatic(f"delivery report ({msg.get_param('report-type') or 'unknown type'})",
                         tuple(failed_recipients(msg)))
    auto_submitted = header_str(msg, "Auto-Submitted").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return Automatic(f"Auto-Submitted: {auto_submitted}")
    precedence = header_str(msg, "Precedence").strip().lower()
    if precedence in _PRECEDENCE:
        return Automatic(f"Precedence: {precedence}")
    for header in ("X-Autoreply", "X-Autorespond", "X-Autoresponse"):
        if msg.get(header) is not None:
            return Automatic(f"{header} header")
    if msg.get("List-Id") is not None:
        return Automatic(f"mailing list ({header_str(msg, 'List-Id').strip()[:100]})")
    if envelope_from == "":
        return Automatic("null envelope sender (a bounce or other automatic notice)")
    return None


def failed_recipients(msg: Message) -> list[str]:
    """Final-Recipient of every ``Action: failed`` block in a delivery-status part (RFC 3464)."""
    failed: list[str] = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks: list[str] = []
        if isinstance(payload, list):  # the email package parses the fields into pseudo-messages
            for block in payload:
                if isinstance(block, Message):
                    blocks.append("\n".join(f"{k}: {v}" for k, v in block.items()))
        else:
            blocks = part_text(part).replace("\r\n", "\n").split("\n\n")
        for block in blocks:
            fields: dict[str, str] = {}
            for line in block.splitlines():
                key, sep, value = line.partition(":")
                if sep:
                    fields[key.strip().lower()] = value.strip()
            if fields.get("action", "").lower() != "failed":
                continue
            recipient = fields.get("final-recipient") or fields.get("original-recipient") or ""
            email = normalise_email(recipient.partition(";")[2] if ";" in recipient else recipient)
            if email and email not in failed:
                failed.append(email)
    return failed
