"""Finding the original message inside a forward: inline (Gmail, Outlook desktop and web, Apple Mail,
Thunderbird; English and German; plain text or HTML turned into text) or attached (message/rfc822).

Only the top-most forwarded message counts; quoted older messages ("Am … schrieb …:", "On … wrote:")
below it, or lines quoted with ">", never decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from crm_inbox.mail.addresses import Address, normalise_email, parse_addresses
from crm_inbox.mail.parse import Limits, MailParseError, ParsedMail, parse_mail

# Lines that introduce a forwarded message, per mail client; the name says which (shown to staff).
_SEPARATORS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # Gmail writes ten dashes before and nine after; Thunderbird eight on each side.
    ("Gmail (English)", re.compile(r"^-{9,}\s*Forwarded message\s*-{9,}$", re.I)),
    ("Gmail (German)", re.compile(r"^-{9,}\s*Weitergeleitete Nachricht\s*-{9,}$", re.I)),
    ("Thunderbird (English)", re.compile(r"^-{3,8}\s*Forwarded Message\s*-{3,8}$", re.I)),
    ("Thunderbird (German)", re.compile(r"^-{3,8}\s*Weitergeleitete Nachricht\s*-{3,8}$", re.I)),
    ("Outlook (English)", re.compile(r"^-{3,}\s*Original Message\s*-{3,}$", re.I)),
    ("Outlook (German)", re.compile(r"^-{3,}\s*(Ursprüngliche Nachricht|Originalnachricht)\s*-{3,}$", re.I)),
    ("Apple Mail (English)", re.compile(r"^Begin forwarded message:?$", re.I)),
    ("Apple Mail (German)", re.compile(r"^Anfang der weitergeleiteten Nachricht:?$", re.I)),
    ("Outlook", re.compile(r"^_{20,}$")),
)
# "On Mon, 3 Nov 2026, X wrote:" / "Am 03.11.2026 um 10:12 schrieb X:": quoted history, never a party.
_REPLY_MARKER = re.compile(r"^(On .{4,200} wrote:|Am .{4,200} schrieb .{1,200}:)$", re.I)

# Mobile mail apps' automatic footers: not a colleague's comment.
_BOILERPLATE = re.compile(
    r"^(Sent from my \w+.*|Von meinem \w+.* gesendet|Gesendet von meinem \w+.*|Get Outlook for \w+.*|"
    r"Outlook für \w+ beziehen|Sent from Mail for Windows.*|Gesendet von Mail für Windows.*)$", re.I | re.M)

_KEYS = {
    "from": "from", "von": "from",
    "sent": "date", "gesendet": "date", "date": "date", "datum": "date",
    "to": "to", "an": "to", "cc": "cc", "kopie": "cc", "bcc": "bcc",
    "subject": "subject", "betreff": "subject",
    "reply-to": "reply-to", "antwort an": "reply-to",
}
_HEADER_LINE = re.compile(r"^\s*\*?(?P<key>[A-Za-zÄÖÜäöü -]{2,12}?)\*?\s*:\*?\s*(?P<value>.*)$")


@dataclass
class Forwarded:
    sender: Address  # email may be empty when the header carried only a display name
    style: str
    note: str = ""
    subject: str | None = None
    to: list[Address] = field(default_factory=list)
    body: str = ""


def _note(text: str) -> str:
    return _BOILERPLATE.sub("", text).strip()


def _header(line: str) -> tuple[str, str] | None:
    match = _HEADER_LINE.match(line)
    if not match:
        return None
    key = _KEYS.get(match.group("key").strip().lower())
    return (key, match.group("value").strip()) if key else None


def _parse_sender(value: str) -> Address:
    """``Name <a@b>``, ``Name [mailto:a@b]``, ``Name <mailto:a@b>``, ``a@b`` or just ``Name``."""
    value = re.sub(r"\[mailto:([^\]]+)\]", r"<\1>", value)
    value = value.replace("<mailto:", "<")
    found = parse_addresses(value)
    if found and found[0].email:
        return found[0]
    bare = re.search(r"[\w.+'-]+@[\w-]+(\.[\w-]+)+", value)
    if bare and normalise_email(bare.group(0)):
        name = value.replace(bare.group(0), "").strip(" <>\"'()")
        return Address(" ".join(name.split()), normalise_email(bare.group(0)))
    return Address(" ".join(value.strip(" \"'").split()), "")


def _header_block(lines: list[str], start: int) -> tuple[dict[str, str], int] | None:
    """Forwarded headers from ``start``: ``From:`` plus others, blank lines between them allowed
    (Outlook's HTML puts each in a paragraph). Returns the fields and the index after the block."""
    fields: dict[str, str] = {}
    last_key = None
    i = start
    while i < len(lines):
        line = lines[i].strip()
        if not line:
            # a blank line ends the block unless another header line follows right after
            if fields and not (i + 1 < len(lines) and _header(lines[i + 1])):
                break
            i += 1
            continue
        parsed = _header(line)
        if parsed:
            key, value = parsed
            fields.setdefault(key, value)
            last_key = key
        elif last_key in {"to", "cc"} and "@" in line:
            fields[last_key] += " " + line  # a long recipient list wrapped onto the next line
        elif last_key and not fields.get(last_key):
            fields[last_key] = line  # Thunderbird's HTML table puts the value on its own line
        else:
            break
        i += 1
    if "from" not in fields:
        return None
    return fields, i


def find_inline_forward(text: str) -> Forwarded | None:
    lines = text.replace("\r\n", "\n").split("\n")
    for index, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith(">"):
            continue
        if _REPLY_MARKER.match(line):
            return None  # quoted history starts before any forward: nothing here decides
        style = next((name for name, pattern in _SEPARATORS if pattern.match(line)), None)
        if style is not None:
            block = _header_block(lines, index + 1)
        else:
            # Outlook on the web and Outlook's HTML forwards have no separator line: a header block
            # that starts with From/Von and has at least one more forwarded header.
            parsed = _header(line)
            if not parsed or parsed[0] != "from":
                continue
            block = _header_block(lines, index)
            if block is None or len(block[0]) < 2 or not ({"date", "to", "subject"} & block[0].keys()):
                continue
            style = "Outlook (German)" if line.lower().lstrip("*").startswith("von") else "Outlook (English)"
        if block is None:
            continue
        fields, end = block
        return Forwarded(
            sender=_parse_sender(fields["from"]),
            style=f"{style} inline forward",
            note=_note("\n".join(lines[:index])),
            subject=fields.get("subject"),
            to=parse_addresses(fields.get("to", "").replace(";", ",")),
            body="\n".join(lines[end:]).strip(),
        )
    return None


def find_attached_forward(mail: ParsedMail, limits: Limits) -> Forwarded | None:
    for attachment in mail.attachments:
        if attachment.content_type != "message/rfc822" or not attachment.content:
            continue
        try:
            inner = parse_mail(attachment.content, limits)
        except MailParseError:
            continue
        if inner.author is None:
            continue
        return Forwarded(sender=inner.author, style="forwarded as attachment", note=_note(mail.text),
                         subject=inner.subject or None, to=inner.to, body=inner.text)
    return None


def find_forwarded(mail: ParsedMail, limits: Limits | None = None) -> Forwarded | None:
    """The top-most forwarded message: inline in the text first, else an attached message."""
    return find_inline_forward(mail.text) or find_attached_forward(mail, limits or Limits())
