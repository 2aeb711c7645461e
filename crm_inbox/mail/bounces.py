"""Bounces: which recipients a delivery report says failed, from RFC 3464 reports and the text of the
non-standard notices real MTAs send (Postfix, Exim, Sendmail, qmail, Courier, Exchange, Gmail, Yahoo,
Amazon SES, OpenSMTPD, Domino).

Precision first: an address counts as failed only where the report's structure or the MTA's own wording
says so (``<addr>: host … said``, "The following address(es) failed:", ``Action: failed``). An address
that is merely quoted in a notice, or that sits in the attached original, is never a failed recipient
on its own.
"""

from __future__ import annotations

import base64
import binascii
import json
import quopri
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.parser import HeaderParser

from crm_inbox.mail.addresses import normalise_email, parse_addresses
from crm_inbox.mail.parse import Message, decode_header_value, header_str, part_text

# Machine-readable report parts (RFC 3464, RFC 6533, RFC 5965, RFC 8098).
STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
REPORT_PART_TYPES = STATUS_TYPES | {"message/feedback-report", "message/disposition-notification",
                                    "message/global-disposition-notification"}


@dataclass(frozen=True)
class RecipientStatus:
    """One per-recipient block of a delivery-status report, as the reporting MTA wrote it."""

    recipient: str
    action: str  # failed, delayed, delivered, relayed, expanded (lower case; '' if missing)
    status: str  # e.g. 5.1.1
    diagnostic: str = ""

    @property
    def failed(self) -> bool:
        # Some MTAs omit Action; a permanent (5.x.x) status then says the same.
        return self.action in ("failed", "failure") or (not self.action and self.status.startswith("5"))

    def describe(self) -> str:
        text = f"{self.recipient} {self.action or 'status'} {self.status}".rstrip()
        return f"{text} ({self.diagnostic[:160]})" if self.diagnostic else text


def report_type(msg: Message) -> str | None:
    """The kind of machine-generated report ``msg`` is, or None: multipart/report (any report-type), or a
    report part inside another multipart (ARF sent as multipart/mixed, odd DSNs)."""
    if msg.get_content_type() == "multipart/report":
        return str(msg.get_param("report-type") or "unknown type").lower()
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in REPORT_PART_TYPES:
            return ctype.partition("/")[2].replace("global-", "")
        if ctype == "text/plain" and part is not msg and _looks_like_feedback_fields(part):
            return "feedback-report"
    return None


def _looks_like_feedback_fields(part: Message) -> bool:
    """An ARF report part mislabelled text/plain (some feedback loops): it starts with Feedback-Type."""
    if header_str(part, "Content-Disposition").lower().startswith("attachment"):
        return False
    head = part_text(part).lstrip()[:300].lower()
    return head.startswith("feedback-type:") and "user-agent:" in head


def _flatten(part: Message) -> str:
    """The part's body as the sender wrote it, decoded (base64 and quoted-printable reports exist)."""
    payload = part.get_payload()
    if isinstance(payload, list):  # compat32 parses the fields into pseudo-messages: put the text back
        blocks = []
        for block in payload:
            if isinstance(block, Message):
                body = block.get_payload()
                fields = "\n".join(f"{key}: {value}" for key, value in block.raw_items())
                blocks.append(fields + ("\n" + body if isinstance(body, str) and body.strip() else ""))
        text = "\n\n".join(blocks)
    else:
        text = payload if isinstance(payload, str) else ""
    cte = header_str(part, "Content-Transfer-Encoding").strip().lower()
    raw = text.encode("utf-8", "surrogateescape")  # 8-bit text stays as the bytes that came
    if cte == "base64":
        try:
            raw = base64.b64decode(b"".join(raw.split()), validate=False)
        except (binascii.Error, ValueError):
            return ""
    elif cte == "quoted-printable":
        raw = quopri.decodestring(raw)
    return raw.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")


_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")


def _field_groups(text: str) -> Iterator[dict[str, str]]:
    """Per-recipient groups of fields. A new group starts at a blank line or at a second
    Final-Recipient/Original-Recipient, so reports with whitespace-only separator lines (which
    make the stdlib see one block) still keep every recipient."""
    fields: dict[str, str] = {}
    last = ""
    for line in text.split("\n"):
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, ""
            continue
        if line[:1] in (" ", "\t") and last:
            fields[last] += " " + line.strip()
            continue
        match = _FIELD.match(line)
        if match is None:
            continue
        key, value = match.group(1).lower(), match.group(2).strip()
        if key in ("final-recipient", "original-recipient") and "final-recipient" in fields and (
                key == "final-recipient" or "original-recipient" in fields):
            yield fields
            fields = {}
        fields[key] = value
        last = key
    if fields:
        yield fields


def _typed_address(value: str) -> str:
    """``rfc822; <a@b>`` (or ``utf-8; a@b``, or a bare address) → ``a@b`` normalised, or ''."""
    address = value.partition(";")[2] if ";" in value else value
    address = address.strip()
    if "<" in address and ">" in address:
        address = address[address.index("<") + 1:address.index(">", address.index("<"))]
    return normalise_email(address.split()[0] if address.split() else "")


def _status(fields: dict[str, str]) -> RecipientStatus | None:
    fields = {key: value.replace("\x00", "") for key, value in fields.items()}  # NUL: PostgreSQL cannot store it
    recipient = _typed_address(fields.get("final-recipient") or fields.get("original-recipient") or "")
    if not recipient:
        return None  # the per-message block (Reporting-MTA, Arrival-Date), or an unusable address
    status = (fields.get("status") or "").split()
    diagnostic = " ".join((fields.get("diagnostic-code") or "").split())
    return RecipientStatus(recipient, (fields.get("action") or "").split(" ")[0].lower()[:20],
                           (status[0] if status else "")[:20], diagnostic[:500])


def delivery_statuses(msg: Message) -> list[RecipientStatus]:
    """Every per-recipient block of every delivery-status part, in order."""
    statuses: list[RecipientStatus] = []
    for part in msg.walk():
        if part.get_content_type() in STATUS_TYPES:
            statuses += [s for s in map(_status, _field_groups(_flatten(part))) if s is not None]
    return statuses


# --- non-standard bounces: the MTA's own words, then where it names the failed recipients ----------------

_ADDR = r"[^\s<>()\[\]\"',;:]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
# The point where a notice stops and the returned message begins: nothing below it is the MTA speaking.
_ORIGINAL_STARTS = re.compile(
    r"^\s*(-{2,} ?Below this line is a copy of the message|-{2,} ?This is a copy of the message|"
    r"Below is a copy of the original message|-{2,} ?Original message|-{3,} ?Original Message|"
    r"-{2,} ?The header of the original message|Original message headers:|-{2,} ?Original message follows|"
    r"-{2,} ?Returned message|-{2,} ?Unsent message below|-{2,} ?Forwarded message|"
    r"-{2,} ?Message header follows|-{2,} ?The following is a copy of the message|"
    r"Ursprüngliche Nachrichtenkopfzeilen:|En-têtes du message d'origine|Encabezados del mensaje original|"
    r"Intestazioni del messaggio originale|Kopteksten van oorspronkelijk bericht)",
    re.IGNORECASE | re.MULTILINE)

# Each shape: (name, how the MTA introduces the list of failed recipients, how one line of it looks).
# Entries are read from the introduction to the end of the notice (or a "-----" section line after
# them); explanations between entries are skipped, and an entry is a whole line of its own shape.
_ANGLE_LINE = re.compile(rf"^<({_ADDR})>(?: \(expanded from <[^>]*>\))?:")  # Postfix, qmail, Yahoo, Courier
_INDENTED_ADDR = re.compile(rf"^\s*(?:[^<>@\n]{{1,60}}<)?<?({_ADDR})>?\s*(?:\(.*\))?\s*$")  # "  a@b", "Name <a@b>"
_SHAPES: tuple[tuple[str, re.Pattern[str], re.Pattern[str]], ...] = (
    ("Postfix", re.compile(r"This is the mail system at host|This is the (?:[\w-]+ )?Postfix program|"
                           r"^\s*The (?:[\w-]+ )?(?:mail system|Postfix program|Postfix on .+ program)\s*$",
                           re.I | re.M), _ANGLE_LINE),
    ("qmail", re.compile(r"This is the qmail-send program|I'm afraid I wasn't able to deliver your message", re.I),
     _ANGLE_LINE),
    ("Yahoo", re.compile(r"we were unable to deliver your message to the following address", re.I), _ANGLE_LINE),
    ("Courier", re.compile(r"Your message to the following recipients cannot be delivered", re.I), _ANGLE_LINE),
    # "  a@b", "  a@b: forced freeze", "  a@b <c@d>: …" (also after "A message sent by <x> could not …")
    # (GMX and 1&1 run it too: "The following address\nfailed:", entries unindented or quoted)
    ("Exim", re.compile(r"The following\s+address(?:\(es\)|es)?\s+failed:", re.I),
     re.compile(rf"^\s{{0,4}}[\"<]?({_ADDR})[\">]?(?::.*|\s+<[^>]*>:.*)?\s*$")),
    ("Sendmail", re.compile(r"-+ ?The following addresses had permanent fatal errors ?-+", re.I), _INDENTED_ADDR),
    ("Exchange", re.compile(
        r"Delivery has failed to these recipients or (?:groups|distribution lists):|"
        r"Die Zustellung an folgende Empfänger oder Gruppen ist fehlgeschlagen:|"
        r"La remise aux destinataires ou groupes suivants a échoué ?:|"
        r"Error en la entrega a estos destinatarios o grupos:|"
        r"Recapito non riuscito ai seguenti destinatari o gruppi:|"
        r"Bezorging is mislukt voor deze ontvangers of groepen:|"
        r"The following recipient\(s\) (?:cannot|could not) be reached:", re.I),
        # "a@b (a@b)", "Name (a@b)", "Name<mailto:a@b>", "'a@b' on 12/1/2026 10:00": the whole line is one entry
        re.compile(rf"^\s*(?:[^<>()@\n]{{1,60}}(?:\(|<mailto:|<)|\(|<mailto:|<|'|\")?({_ADDR})[)'\">]?(?:<mailto:[^>]*>)?"
                   rf"(?:\s*\({_ADDR}\))?(?:\s+on\s.{{0,40}})?\s*$")),
    ("Gmail", re.compile(r"Delivery to the following recipients? failed permanently:", re.I), _INDENTED_ADDR),
    ("Amazon SES", re.compile(r"An error occurred while trying to deliver the mail to the following recipients?:",
                              re.I), _INDENTED_ADDR),
    ("OpenSMTPD", re.compile(r"the following list of\s+recipients:", re.I), re.compile(rf"^\s*<?({_ADDR})>?:\s")),
    ("Domino", re.compile(r"was not delivered to:", re.I), _INDENTED_ADDR),
    ("Lotus Notes", re.compile(r"-+\s*Failure Reasons\s*-+", re.I), _INDENTED_ADDR),
    ("mail server", re.compile(r"could not be delivered to the following recipients?:|"
                               r"permanent error\. The following address(?:es)? failed:|"
                               r"Delivery to the following recipients? failed[:.]", re.I), _INDENTED_ADDR),
)
# One-sentence notices that name the one failed recipient in the sentence itself.
_SENTENCES = re.compile(
    rf"Your message to <?({_ADDR})>? couldn.t be delivered|"
    rf"Your message wasn.t delivered to <?({_ADDR})>?|"
    rf"Ihre Nachricht an <?({_ADDR})>? konnte nicht (?:zugestellt|übermittelt) werden|"
    rf"Ihre Nachricht wurde nicht an <?({_ADDR})>? (?:zugestellt|übermittelt)|"
    rf"Votre message (?:à|pour) <?({_ADDR})>? n.a pas pu être (?:remis|distribué)|"
    rf"No se pudo entregar (?:el|su) mensaje a <?({_ADDR})>?|"
    rf"Impossibile recapitare il messaggio a <?({_ADDR})>?|"
    rf"Uw bericht aan <?({_ADDR})>? kan niet worden bezorgd|"
    rf"Delivery to (?:the following recipient )?<?({_ADDR})>? failed permanently|"
    rf"Unable to deliver (?:your )?message to <?({_ADDR})>?\.?\s*$|"
    rf"There was an error delivering your mail to <?({_ADDR})>?",
    re.IGNORECASE | re.MULTILINE)


# Addresses a notice gives for help ("contact postmaster@…"), never the recipient that failed.
_CONTACT_POINT = re.compile(r"^(postmaster|mailer-daemon|hostmaster|abuse|helpdesk|no-?reply)@")


def notice_text(text: str) -> str:
    """The notice without the returned original below it (its addresses are not the MTA's words)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")  # old Macs end lines in CR
    match = _ORIGINAL_STARTS.search(text)
    return text[:match.start()] if match else text


def angle_colon_lines(text: str) -> list[str]:
    """``<a@b>: …`` at the start of a line of the notice: how Postfix, qmail, Yahoo and Courier (and
    their renamed copies) list failed recipients. Only for mail already known to be a bounce."""
    found: list[str] = []
    for line in notice_text(text).split("\n"):
        hit = _ANGLE_LINE.match(line)
        email = normalise_email(hit.group(1)) if hit else ""
        if email and email not in found:
            found.append(email)
    return found


def statuses_in_text(text: str) -> list[RecipientStatus]:
    """Delivery-status fields written into the text itself (a report part mislabelled text/plain, or a
    bounce whose MIME structure was lost on the way): the same per-recipient blocks."""
    if "final-recipient" not in text.lower():
        return []
    groups = (g for g in _field_groups(notice_text(text))
              if "final-recipient" in g and ("action" in g or "status" in g))
    return [s for s in map(_status, groups) if s is not None]


def ses_notification(text: str) -> tuple[str, list[str]] | None:
    """An Amazon SES notification mailed by SNS (JSON with ``notificationType``): its kind and, for a
    permanent bounce, the bounced recipients."""
    start = text.find("{")
    if start < 0 or "notificationType" not in text:  # also escaped inside an SNS envelope
        return None
    try:
        data, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("Message"), str):  # wrapped in an SNS envelope
        try:
            data = json.loads(data["Message"])
        except ValueError:
            return None
    if not isinstance(data, dict) or not isinstance(data.get("notificationType"), str):
        return None
    kind = data["notificationType"]
    bounce = data.get("bounce")
    if not isinstance(bounce, dict):
        bounce = {}
    failed: list[str] = []
    if kind == "Bounce" and bounce.get("bounceType") == "Permanent":
        for item in bounce.get("bouncedRecipients") or []:
            email = normalise_email(_typed_address(str(item.get("emailAddress", "")))) if isinstance(item, dict) else ""
            if email and email not in failed:
                failed.append(email)
    return kind, failed


def bounce_shape(text: str) -> tuple[str, list[str]] | None:
    """(which MTA's wording, the failed recipients it lists) for a non-standard bounce, or None."""
    notice = notice_text(text)
    for name, intro, entry in _SHAPES:
        match = intro.search(notice)
        if match is None:
            continue
        found: list[str] = []
        lines = notice[match.end():].split("\n")
        if lines:
            lines[0] = lines[0].strip()  # the intro and the first entry on one line ("… to:  a@b")
        for line in lines[:300]:
            hit = entry.match(line)
            if hit:
                email = normalise_email(hit.group(1))
                if email and email not in found and not _CONTACT_POINT.match(email):
                    found.append(email)
            elif found and line.lstrip().startswith("---"):
                break  # the next section (Sendmail's transcript): entries end here
        if found:
            return name, found
    found = []
    for match in _SENTENCES.finditer(notice):
        email = normalise_email(next(g for g in match.groups() if g))
        if email and email not in found:
            found.append(email)
    return ("notice", found) if found else None


# Only the notice's own words: "Undeliverable: Delay of shipment" is a failure about a mail on delays.
_DELAY_SUBJECT = re.compile(
    r"^\s*(Delayed Mail|Warning: could not send|Warning: message \S+ delayed|Delivery Status Notification \(Delay\)|"
    r"Delivery delayed|Message delayed|Delivery Delay|Zustellung verzögert|Verzögerte Zustellung|"
    r"Remise différée|Entrega retrasada|Consegna ritardata|Vertraagde bezorging)", re.IGNORECASE)
_DELAY_TEXT = re.compile(
    r"has not yet been delivered|not been delivered yet|will continue trying|will (?:be )?retr(?:y|ied)|"
    r"still trying|is being retried|THIS IS A WARNING|Delivery to the following recipients? has been delayed|"
    r"Delivery Incomplete|wird weiter versucht|noch nicht zugestellt|No action is required on your part|"
    r"Delay reason:", re.IGNORECASE)


def is_delay_notice(subject: str, text: str) -> bool:
    """A "still trying" notice: nothing has failed yet."""
    return bool(_DELAY_SUBJECT.search(subject)) or bool(_DELAY_TEXT.search(notice_text(text)[:4000]))


def original_recipients(msg: Message) -> list[str]:
    """To/Cc of the returned original (message/rfc822 or text/rfc822-headers part), if one is attached."""
    for part in msg.walk():
        ctype = part.get_content_type()
        headers: Message | None = None
        if ctype in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            headers = inner[0] if isinstance(inner, list) and inner and isinstance(inner[0], Message) else None
        elif ctype in ("text/rfc822-headers", "text/global-headers"):

            headers = HeaderParser().parsestr(part_text(part).replace("\r\n", "\n"), headersonly=True)
        if headers is not None:
            values = [decode_header_value(v) for name in ("To", "Cc") for v in headers.get_all(name) or []]
            return [a.email for a in parse_addresses(*values) if a.email]
    return []


def named_in(addresses: Iterable[str], text: str) -> list[str]:
    """The addresses that the notice itself names (case-insensitively)."""
    notice = notice_text(text).lower()
    return [a for a in addresses if a and a in notice]
