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
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from weakref import WeakKeyDictionary

from crm_inbox.mail import boundaries, charsets
from crm_inbox.mail.addresses import Address, parse_addresses
from crm_inbox.mail.attachments import safe_filename
from crm_inbox.mail.encoded_words import decode_words
from crm_inbox.mail.html import html_to_text, sanitise_html
from crm_inbox.time_range import in_range

Message = email.message.Message
boundaries.install()  # Python 3.13's boundary matching on 3.11 and 3.12 (mail/boundaries.py)


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
        """The first usable From address; without one, Sender's, then Reply-To's (``author_header`` says which).
        With no usable address anywhere, the first From (or Sender) name, for a match by name."""
        return self._author()[0]

    @property
    def author_header(self) -> str | None:
        """The header ``author`` comes from: "From", "Sender" or "Reply-To"."""
        return self._author()[1]

    def _author(self) -> tuple[Address | None, str | None]:
        for header, addresses in (("From", self.from_), ("Sender", self.sender), ("Reply-To", self.reply_to)):
            for address in addresses:
                if address.email:
                    return address, header
        if self.from_:
            return self.from_[0], "From"
        return (self.sender[0], "Sender") if self.sender else (None, None)


# Raw 8-bit bytes as the parser keeps them (surrogateescape), searched in C: a Python generator step per
# character of every header was a visible share of parsing.
_RAW_8BIT = re.compile("[\udc80-\udcff]")


def _has_8bit(text: str) -> bool:
    return not text.isascii() and _RAW_8BIT.search(text) is not None


def _header_bytes_to_text(text: str, msg: Message | None) -> str:
    """A raw header value as text. Raw 8-bit bytes (kept by the parser as surrogates) are UTF-8 when valid
    (RFC 6532), else in the charset the message's text parts declare, else what detection over the message's
    8-bit headers and bodies finds. 7-bit ISO-2022-JP (escape sequences) is decoded too."""
    if not _has_8bit(text):
        # 7-bit ISO-2022-JP written raw (old Japanese mailers): its escape sequences are not text
        return charsets.decode(text.encode("ascii")) if "\x1b" in text else text
    data = text.encode("ascii", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared, sample = _charset_hint(msg) if msg is not None else ([], b"")
    sample = data + b"\n" + sample
    return charsets.decode_header(data, declared, sample)


_HINTS: WeakKeyDictionary[Message, tuple[list[str], bytes]] = WeakKeyDictionary()


def _charset_hint(msg: Message) -> tuple[list[str], bytes]:
    """The charsets the message's own text parts declare and a sample of its 8-bit header and body bytes:
    software that writes raw 8-bit headers writes them in the charset of its body."""
    if msg in _HINTS:
        return _HINTS[msg]
    declared: list[str] = []
    sample = bytearray()
    for _key, value in msg.raw_items():
        if _has_8bit(str(value)):
            sample += str(value).encode("ascii", "surrogateescape") + b"\n"
    stack = [msg]
    while stack and len(declared) < 20:
        part = stack.pop(0)
        if part.get_content_maintype() == "message":
            continue  # an attached message has its own charsets
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(p for p in payload if isinstance(p, Message))
            continue
        if part.get_content_maintype() != "text":
            continue
        charset = part.get_content_charset()
        if charset:
            declared.append(charset)
        if len(sample) < charsets.DETECT_BYTES:
            body = part.get_payload(decode=True)
            if isinstance(body, bytes) and not body.isascii():
                sample += body[:charsets.DETECT_BYTES] + b"\n"
    _HINTS[msg] = (declared, bytes(sample))
    return _HINTS[msg]


# The headers of a parsed message (or part) by lower-cased name, built on first use: the steps ask for some 30
# headers per message, and each ask scanned every header.
_RAW_INDEX: WeakKeyDictionary[Message, dict[str, list[str]]] = WeakKeyDictionary()


def _raw_values(msg: Message, name: str) -> list[str]:
    """Every value of header ``name`` as sent (compat32's ``get`` turns raw 8-bit bytes into U+FFFD)."""
    index = _RAW_INDEX.get(msg)
    if index is None:
        index = {}
        for key, value in msg.raw_items():
            index.setdefault(key.lower(), []).append(str(value))
        _RAW_INDEX[msg] = index
    return index.get(name.lower(), [])


def has_header(msg: Message, name: str) -> bool:
    return bool(_raw_values(msg, name))


def _unfold(text: str) -> str:
    return re.sub(r"\r?\n|\r", " ", text)


def _clean(text: str) -> str:
    return " ".join(text.replace("\x00", "").split())


def decode_header_value(value: object) -> str:
    """A header as readable text: raw 8-bit bytes read as UTF-8 or detected, RFC 2047 words decoded.
    (Unstructured headers only: an address header is split before its names are decoded, see
    ``addresses.parse_addresses``.)"""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        # compat32 wraps a raw 8-bit value in a Header whose str() is U+FFFD: take the original chunks back.
        chunks = getattr(value, "_chunks", None)
        value = "".join(str(c) for c, _cs in chunks) if chunks else str(value)
    return _clean(decode_words(_header_bytes_to_text(str(value), None)))


def _unstructured(msg: Message, name: str) -> str:
    values = _raw_values(msg, name)
    return _clean(decode_words(_header_bytes_to_text(values[0], msg))) if values else ""


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes → text with the declared charset, else UTF-8, else detected (never raises).

    NUL characters are dropped: they mean nothing in mail text and PostgreSQL cannot store them.
    """
    return charsets.decode(data, [charset]).replace("\x00", "")


def header_str(msg: Message, name: str) -> str:
    """A header as ``str``, raw 8-bit bytes read as UTF-8 or in the message's charset (not RFC 2047-decoded)."""
    values = _raw_values(msg, name)
    return _header_bytes_to_text(values[0], msg) if values else ""


def _raw_header(msg: Message, name: str) -> str | None:
    """The header's value unfolded but otherwise untouched (Message-IDs are identity, not text)."""
    values = _raw_values(msg, name)
    if not values:
        return None
    text = values[0]
    if _has_8bit(text):
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


MAX_REFERENCES = 50  # Message-IDs a look-up by In-Reply-To/References takes: a long thread's first ones


def referenced(references: Iterable[str]) -> list[str]:
    """The Message-IDs of a mail's In-Reply-To and References as the look-ups by them take them (tickets, deals):
    once each, in order, at most ``MAX_REFERENCES``. One rule, so a look-up made alone and the pipeline's
    combined one (``pipeline.answered``) ask for the same."""
    return [r for r in dict.fromkeys(references) if r][:MAX_REFERENCES]


def _header_addresses(msg: Message, name: str) -> list[Address]:
    """Addresses from the raw header: split first, display names decoded after (``parse_addresses``)."""
    return parse_addresses(*(_unfold(_header_bytes_to_text(v, msg)) for v in _raw_values(msg, name)))


def _parse_date(msg: Message) -> datetime | None:
    """The Date header in UTC; None when missing, unreadable or outside the range any real mail has."""
    value = _unstructured(msg, "Date")
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        moment = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return moment if in_range(moment) else None


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
    named_texts: list[tuple[ParsedAttachment, str]] = []  # text/plain with only a name=, not marked attachment
    stack: list[Message] = [msg]
    while stack:
        part = stack.pop(0)
        ctype = part.get_content_type()
        if ctype == "message/rfc822" or (ctype.startswith("message/") and part.is_multipart()):
            inner = part.get_payload()
            inner_msg = inner[0] if isinstance(inner, list) and inner else None
            data = inner_msg.as_bytes() if isinstance(inner_msg, Message) else b""
            budget.take(len(data))
            subject = _unstructured(inner_msg, "Subject") if isinstance(inner_msg, Message) else ""
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
        attachment = ParsedAttachment(safe_filename(filename, ctype), ctype, content)
        attachments.append(attachment)
        if ctype == "text/plain" and disposition != "attachment" and not part.get_param(
                "filename", header="content-disposition"):
            named_texts.append((attachment, part_text(part)))
        part.set_payload("")  # the encoded text is no longer needed: do not hold a large file twice
    if not texts and not htmls and len(named_texts) == 1:
        # Some mailers name their only text part (Content-Type: text/plain; name="message.txt"): it is the
        # body, not an attachment that leaves the mail without text.
        attachment, body = named_texts[0]
        attachments.remove(attachment)
        texts.append(body)
    return texts, htmls, attachments


CHUNK = 1 << 16


_FIELD = re.compile(rb"[!-9;-~]+[ \t]*:")
_BLANK_LINE = re.compile(rb"(?:\A|\n)(\r?\n)")
MAX_HEADER_BLOCK = 8 << 20  # beyond this the header block is passed on as it is


def repair_header_block(head: bytes) -> bytes:
    """Unindented continuation lines made indented, so they do not end the header block.

    The stdlib parser ends the headers at the first line that is not ``Name:`` or indented: a wrapped
    Subject written without the leading space lost every header after it (From among them). A line
    counts as a continuation when more header fields follow it; after the last field it stays the start
    of the body, as before. ``Subject : x`` (RFC 822's space before the colon) becomes ``Subject: x``.
    """
    lines = head.splitlines(keepends=True)
    start = 1 if lines and lines[0].startswith(b"From ") else 0  # an mbox envelope line
    fields = [_FIELD.match(line) for line in lines]
    last = max((i for i in range(start, len(lines)) if fields[i]), default=-1)
    broken = [i for i in range(start, last) if not fields[i] and lines[i][:1] not in (b" ", b"\t")]
    spaced = [i for i in range(start, last + 1) if (m := fields[i]) is not None and m.group()[-2:-1] in (b" ", b"\t")]
    if not broken and not spaced:
        return head
    for i in broken:
        lines[i] = b" " + lines[i]
    for i in spaced:
        match = fields[i]
        assert match is not None
        lines[i] = match.group().rstrip(b": \t") + b":" + lines[i][match.end():]
    return b"".join(lines)


def _feed(chunks: Iterable[bytes]) -> Message:
    """Feed the parser piece by piece: ``message_from_bytes`` first turns the whole message into one
    string and a StringIO of it (4 bytes a character), several times the message's size in memory.
    The header block is collected first and repaired (``repair_header_block``)."""
    parser = email.parser.BytesFeedParser(policy=email.policy.compat32)
    empty = True
    head = bytearray()
    in_head = True
    cr_only: bool | None = None
    for chunk in chunks:
        if cr_only is None and chunk:
            # Old Mac mail ends its lines in a lone CR; the parser would see one endless header line.
            cr_only = b"\r" in chunk and b"\n" not in chunk
        if cr_only:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        empty = empty and not chunk.strip()
        if not in_head:
            parser.feed(chunk)
            continue
        searched = max(0, len(head) - 2)
        head += chunk
        blank = _BLANK_LINE.search(head, searched)
        if blank is None and len(head) < MAX_HEADER_BLOCK:
            continue
        end = blank.start(1) if blank is not None else len(head)
        parser.feed(repair_header_block(bytes(head[:end])) + bytes(head[end:]))
        head, in_head = bytearray(), False
    if head:
        parser.feed(repair_header_block(bytes(head)))
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
    text = "\n\n".join(t.strip("\r\n") for t in texts if t.strip())
    if not text and raw_html:
        text = html_to_text(raw_html)
    return ParsedMail(
        message=msg,
        message_id=_raw_header(msg, "Message-ID"),
        subject=_unstructured(msg, "Subject"),
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
