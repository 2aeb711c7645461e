"""Raw mail bytes → ``ParsedMail``: headers decoded, body text, sanitised HTML, attachments.

Built on the stdlib ``email`` package with the lenient ``compat32`` policy, because real mail breaks
every rule: wrong or unknown charsets, raw 8-bit headers, broken boundaries, bad encoded-words.
Anything the parser cannot read becomes a ``MailParseError`` with a message staff can understand.
"""

from __future__ import annotations

import binascii
import email
import email.header
import email.message
import email.parser
import email.policy
import email.utils
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from crm_inbox.mail.addresses import Address, parse_addresses
from crm_inbox.mail.attachments import safe_filename
from crm_inbox.mail.html import html_to_text, sanitise_html

Message = email.message.Message


class MailParseError(Exception):
    """The message cannot be processed (the raw bytes stay stored; the reason is shown to staff)."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what one message may make the parser do (a MIME bomb is kept as ``failed``, not a crash)."""

    max_nesting_depth: int = 20
    max_parts: int = 500
    max_decoded_bytes: int = 52_428_800  # all bodies and attachments together, after base64/QP decoding


@dataclass
class ParsedAttachment:
    filename: str
    content_type: str
    content: bytes


@dataclass
class ParsedMail:
    message: Message  # the parsed tree, for steps that look at more headers or parts
    message_id: str | None
    subject: str
    date: datetime | None
    from_: list[Address]
    sender: list[Address]
    reply_to: list[Address]
    to: list[Address]
    cc: list[Address]
    in_reply_to: list[str]
    references: list[str]
    text: str
    html: str | None  # sanitised
    raw_html: str | None  # unsanitised; for steps that read structure (never stored or shown)
    attachments: list[ParsedAttachment] = field(default_factory=list)

    @property
    def author(self) -> Address | None:
        return self.from_[0] if self.from_ else (self.sender[0] if self.sender else None)


def decode_header_value(value: object) -> str:
    """A header as readable text: RFC 2047 words decoded, raw 8-bit bytes read as UTF-8 or cp1252."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        value = str(value)
    text = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):  # raw 8-bit bytes kept by surrogateescape
        raw = text.encode("ascii", "surrogateescape")
        text = _decode_bytes(raw, None)
    try:
        parts = email.header.decode_header(text)
    except Exception:  # malformed encoded-words: keep the text as it came
        return " ".join(text.split())
    try:
        # make_header puts back the spaces between encoded and plain words correctly
        joined = str(email.header.make_header(parts))
    except Exception:  # unknown or wrong charset in an encoded word
        joined = " ".join(c if isinstance(c, str) else _decode_bytes(c, cs) for c, cs in parts)
    return " ".join(joined.split()).replace("\x00", "")


# Labels mail gets wrong in practice, mapped to the superset that senders really used.
_CHARSET_SUPERSETS = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "iso-8859-1": "cp1252", "latin1": "cp1252",
    "latin-1": "cp1252", "us-ascii": "utf-8", "ascii": "utf-8", "ks_c_5601-1987": "cp949", "euc-kr": "cp949",
    "shift_jis": "cp932", "sjis": "cp932", "iso-8859-9": "cp1254", "unknown-8bit": "utf-8",
    "x-unknown": "utf-8", "default": "utf-8", "utf8": "utf-8",
}


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes → text with the declared charset, else UTF-8, else cp1252 (never raises).

    NUL characters are dropped: they mean nothing in mail text and PostgreSQL cannot store them.
    """
    return _decode_any(data, charset).replace("\x00", "")


def _decode_any(data: bytes, charset: str | None) -> str:
    candidates = [c for c in (charset, "utf-8") if c]
    for cs in candidates:
        cs = cs.strip().strip('"').lower()
        cs = _CHARSET_SUPERSETS.get(cs, cs)
        try:
            return data.decode(cs)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return data.decode("cp1252", errors="replace")


def header_str(msg: Message, name: str) -> str:
    """A header as ``str``; raw 8-bit bytes read as UTF-8 or cp1252.

    compat32 hands back ``Header`` objects with U+FFFD for raw 8-bit values, so read the raw item.
    """
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            text = str(value)
            if any("\udc80" <= ch <= "\udcff" for ch in text):
                text = _decode_bytes(text.encode("ascii", "surrogateescape"), None)
            return text
    return ""


def _raw_header(msg: Message, name: str) -> str | None:
    """The header's value unfolded but otherwise untouched (Message-IDs are identity, not text)."""
    value = msg.get(name)
    if value is None:
        return None
    text = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        text = text.encode("ascii", "surrogateescape").decode("utf-8", "backslashreplace")
    text = " ".join(text.replace("\x00", "").split())
    return text or None


def _msg_ids(value: str | None) -> list[str]:
    """Message-IDs in In-Reply-To/References; tolerant of missing brackets and Exchange's odd forms."""
    if not value:
        return []
    ids: list[str] = []
    rest = value
    while "<" in rest and ">" in rest:
        start = rest.index("<")
        end = rest.find(">", start)
        if end < 0:
            break
        ids.append(rest[start:end + 1])
        rest = rest[end + 1:]
    if not ids:
        ids = value.split()
    return [i for i in ids if len(i) > 2]


def _header_addresses(msg: Message, name: str) -> list[Address]:
    values = msg.get_all(name) or []
    return parse_addresses(*(decode_header_value(v) for v in values))


def _parse_date(msg: Message) -> datetime | None:
    value = msg.get("Date")
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(decode_header_value(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def part_text(part: Message) -> str:
    """The decoded text of one text/* part, whatever its charset claims."""
    payload = part.get_payload(decode=True)
    if payload is None:
        inner = part.get_payload()
        return inner if isinstance(inner, str) else ""
    assert isinstance(payload, bytes)
    charset = part.get_content_charset()
    return _decode_bytes(payload, charset)


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
        if name and "\ufffd" in name:  # raw 8-bit parameter: re-read it from the raw header
            fixed = Message()
            fixed["Content-Disposition"] = header_str(part, "Content-Disposition")
            fixed["Content-Type"] = header_str(part, "Content-Type")
            name = fixed.get_filename() or name
    except Exception:  # broken RFC 2231 parameters
        name = None
    if name is None:
        return None
    return decode_header_value(name)


def _decoded(part: Message) -> bytes:
    """The part's decoded bytes. Base64 is decoded straight from the payload text: the stdlib splits it
    into a list of lines first, which for a 20 MB attachment costs more memory than the file itself."""
    payload = part.get_payload()
    cte = header_str(part, "Content-Transfer-Encoding").strip().lower()
    if cte == "base64" and isinstance(payload, str) and payload.isascii():
        try:
            return binascii.a2b_base64(payload)  # skips line breaks and other non-alphabet characters
        except binascii.Error:
            pass  # broken padding: the stdlib's lenient decoder below repairs what it can
    content = part.get_payload(decode=True)
    return content if isinstance(content, bytes) else b""


def _check_limits(msg: Message, limits: Limits) -> None:
    count = 0
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        count += 1
        if count > limits.max_parts:
            raise MailParseError(f"message has more than {limits.max_parts} MIME parts")
        if depth > limits.max_nesting_depth:
            raise MailParseError(f"MIME parts nested deeper than {limits.max_nesting_depth} levels")
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend((p, depth + 1) for p in payload if isinstance(p, Message))


class _DecodedBudget:
    """Counts decoded bytes across all parts; over the limit is a clear parse error, not memory exhaustion.
    (One part decodes to no more than its encoded text, which is already in memory: checking after each part
    bounds the total.)"""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise MailParseError(f"message decodes to more than {self.limit} bytes (limit max_decoded_bytes)")


def _walk_bodies(msg: Message, limits: Limits | None = None
                 ) -> tuple[list[str], list[str], list[ParsedAttachment]]:
    """Collect inline text and HTML bodies and the attachments, without recursion into rfc822 parts."""
    budget = _DecodedBudget((limits or Limits()).max_decoded_bytes)
    texts: list[str] = []
    htmls: list[str] = []
    attachments: list[ParsedAttachment] = []
    stack: list[Message] = [msg]
    while stack:
        part = stack.pop(0)
        ctype = part.get_content_type()
        if ctype == "message/rfc822" or (ctype.startswith("message/") and part.is_multipart()):
            inner = part.get_payload()
            inner_msg = inner[0] if isinstance(inner, list) and inner else None
            data = inner_msg.as_bytes() if isinstance(inner_msg, Message) else b""
            budget.take(len(data))
            subject = decode_header_value(inner_msg.get("Subject")) if isinstance(inner_msg, Message) else ""
            name = _filename(part) or (subject[:80] + ".eml" if subject else "message.eml")
            attachments.append(ParsedAttachment(safe_filename(name, ctype), "message/rfc822", data))
            continue
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                stack[0:0] = [p for p in payload if isinstance(p, Message)]
            continue
        disposition = header_str(part, "Content-Disposition").split(";")[0].strip().lower()
        filename = _filename(part)
        is_body = disposition != "attachment" and not filename and ctype in {"text/plain", "text/html"}
        if is_body:
            body = part_text(part)
            budget.take(len(body))
            (texts if ctype == "text/plain" else htmls).append(body)
            continue
        content = _decoded(part)
        budget.take(len(content))
        attachments.append(ParsedAttachment(safe_filename(filename, ctype), ctype, content))
        part.set_payload("")  # the encoded text is no longer needed: do not hold a large file twice
    return texts, htmls, attachments


CHUNK = 1 << 16


def _feed(chunks: Iterable[bytes]) -> Message:
    """Feed the parser piece by piece: ``message_from_bytes`` first turns the whole message into one
    string and a StringIO of it (4 bytes a character), several times the message's size in memory."""
    parser = email.parser.BytesFeedParser(policy=email.policy.compat32)
    empty = True
    for chunk in chunks:
        empty = empty and not chunk.strip()
        parser.feed(chunk)
    if empty:
        raise MailParseError("message is empty")
    return parser.close()


def parse_mail(raw: bytes, limits: Limits | None = None) -> ParsedMail:
    """Parse ``raw``; raises ``MailParseError`` (with a clear reason) for what cannot be handled."""
    view = memoryview(raw)
    return parse_mail_chunks((view[i:i + CHUNK].tobytes() for i in range(0, len(view), CHUNK)), limits)


def parse_mail_chunks(chunks: Iterable[bytes], limits: Limits | None = None) -> ParsedMail:
    """Parse a message that arrives in pieces (read from the database bit by bit)."""
    limits = limits or Limits()
    try:
        msg = _feed(chunks)
        _check_limits(msg, limits)
        texts, htmls, attachments = _walk_bodies(msg, limits)
    except MailParseError:
        raise
    except RecursionError:
        raise MailParseError("MIME structure too deeply nested to read") from None
    except Exception as exc:  # the stdlib parser's rare hard failures on garbage
        raise MailParseError(f"cannot parse MIME structure: {exc.__class__.__name__}: {exc}") from exc
    raw_html = "\n".join(htmls) if htmls else None
    text = "\n\n".join(t.strip("\n") for t in texts if t.strip())
    if not text and raw_html:
        text = html_to_text(raw_html)
    return ParsedMail(
        message=msg,
        message_id=_raw_header(msg, "Message-ID"),
        subject=decode_header_value(msg.get("Subject")),
        date=_parse_date(msg),
        from_=_header_addresses(msg, "From"),
        sender=_header_addresses(msg, "Sender"),
        reply_to=_header_addresses(msg, "Reply-To"),
        to=_header_addresses(msg, "To"),
        cc=_header_addresses(msg, "Cc"),
        in_reply_to=_msg_ids(_raw_header(msg, "In-Reply-To")),
        references=_msg_ids(_raw_header(msg, "References")),
        text=text.replace("\r\n", "\n"),
        html=sanitise_html(raw_html) if raw_html else None,
        raw_html=raw_html,
        attachments=attachments,
    )
