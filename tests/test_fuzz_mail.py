"""Property-based fuzzing of mail input (hypothesis): random and mutated bytes, hostile headers and forwarded
text. The whole path (intake.store → worker.process) must never let an exception escape; each stored message
ends ``processed``/``ignored``, or ``failed`` with a reason and nothing half-written. The budget is the
``ci`` profile in ``tests/conftest.py`` (bounded; ``HYPOTHESIS_PROFILE=long`` hunts longer).
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.intake.store import Envelope, store
from crm_inbox.mail.forwarded import find_inline_forward
from crm_inbox.mail.parse import Limits, MailParseError, parse_mail
from crm_inbox.models import Attachment, Contact, InboundMessage, InboundState, Interaction
from crm_inbox.pipeline.runner import process
from tests.conftest import CRM

CORPUS = [p.read_bytes() for p in sorted((Path(__file__).parent / "mail-broken").glob("*.eml"))]
CORPUS += [p.read_bytes() for p in sorted((Path(__file__).parent / "mail").glob("*.eml"))][:20]

HEADER_NAMES = ["From", "To", "Cc", "Reply-To", "Sender", "Subject", "Date", "Message-ID", "In-Reply-To",
                "References", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "MIME-Version",
                "Auto-Submitted", "Precedence", "List-Id", "Return-Path", "Authentication-Results", "X-Autoreply"]
CONTENT_TYPES = ["text/plain", "text/html", "multipart/mixed", "multipart/alternative", "message/rfc822",
                 "message/delivery-status", "application/octet-stream", "image/svg+xml", "text/rfc822-headers"]
ENCODINGS = ["base64", "quoted-printable", "7bit", "8bit", "binary", "x-uuencode", "bogus"]
CHARSETS = ["utf-8", "iso-8859-1", "windows-1252", "gb2312", "x-unknown", "utf-7", "ebcdic", "", "\"utf-8"]

# Header values: arbitrary text (control characters, surrogates cannot be encoded, so skip category Cs),
# sent as UTF-8 or Latin-1 or as RFC 2047 words, or bytes outright.
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=120)
_value = st.one_of(
    _text.map(lambda t: t.encode("utf-8", "replace")),
    _text.map(lambda t: t.encode("latin-1", "replace")),
    st.tuples(st.sampled_from(CHARSETS), st.sampled_from("BQbq"), st.binary(max_size=40)).map(
        lambda c: b"=?%s?%s?%s?=" % (c[0].encode(), c[1].encode(), c[2].hex().encode())),
    st.builds(lambda ct, cs, b: b"%s; charset=%s; boundary=%s" % (ct.encode(), cs.encode(), b),
              st.sampled_from(CONTENT_TYPES), st.sampled_from(CHARSETS), st.binary(max_size=20)),
    st.sampled_from(ENCODINGS).map(str.encode),
    st.binary(max_size=80),
)
_header = st.tuples(st.one_of(st.sampled_from(HEADER_NAMES), st.text("abcXYZ-_:;\t ", min_size=0, max_size=12)),
                    _value).map(lambda h: h[0].encode("latin-1", "replace") + b": " + h[1])


@st.composite
def structured_mail(draw: st.DrawFn) -> bytes:
    """Header lines (some of them nonsense) and a body of MIME-looking pieces with random boundaries."""
    headers = draw(st.lists(_header, max_size=15))
    boundary = draw(st.sampled_from([b"b", b"", b"--", b"x" * 80, b"\"q\""]))
    pieces = draw(st.lists(st.one_of(
        st.just(b"--" + boundary), st.just(b"--" + boundary + b"--"), st.lists(_header, max_size=3).map(b"\r\n".join),
        st.binary(max_size=100), st.just(b""), _text.map(str.encode)), max_size=20))
    top = b'Content-Type: multipart/mixed; boundary="' + boundary + b'"'
    return b"\r\n".join([*headers, top, b"", *pieces])


@st.composite
def mutated_mail(draw: st.DrawFn) -> bytes:
    """A corpus message with bytes flipped, cut out, inserted or repeated."""
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "truncate"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif action == "insert":
            data[at:at] = draw(st.sampled_from([b"\r\n", b"\r\n\r\n", b"--", b"\x00", b"=?", b"?=", b";", b'"',
                                                b"\xff\xfe", b"Content-Type: multipart/mixed; boundary=b\r\n"]))
        elif action == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 200))] * draw(st.integers(2, 20))
        else:
            del data[at:]
    return bytes(data)


any_mail = st.one_of(st.binary(max_size=2000), structured_mail(), mutated_mail())


def _count(session: Session, model: type) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def check_pipeline(factory: sessionmaker[Session], settings: Settings, raw: bytes) -> None:
    with factory() as session:
        before = {m: _count(session, m) for m in (Interaction, Attachment, Contact)}
    accepted = store(factory, raw, Envelope(mail_from="x@example.org", rcpt_to=(CRM,), peer="198.51.100.7"))
    outcome = process(factory, settings, accepted.inbound_id)  # must not raise
    with factory() as session:
        row = session.get_one(InboundMessage, accepted.inbound_id)
        if accepted.duplicate:  # hypothesis drew the same bytes twice: stored and processed once
            assert row.state != InboundState.RECEIVED
            return
        assert outcome.state == row.state
        assert row.state in {InboundState.PROCESSED, InboundState.IGNORED, InboundState.FAILED}
        if row.state == InboundState.FAILED:
            assert row.error, "a failed message must say why"
            assert not row.error.startswith("internal error"), row.error  # bad input is a parse error, not a bug
            assert session.execute(select(Interaction).where(Interaction.inbound_message_id == row.id)).first() is None
            assert {m: _count(session, m) for m in before} == before, "a failed message left rows behind"


# Multiples of the profile's budget: the cheap properties get more examples than the database round trips.
BUDGET = fuzz_settings.default.max_examples


@fuzz_settings(max_examples=BUDGET * 2)
@given(raw=any_mail)
def test_any_bytes_through_the_whole_pipeline_end_processed_or_failed(factory, settings, raw):
    check_pipeline(factory, settings, raw)


@fuzz_settings(max_examples=BUDGET * 6)
@given(raw=st.one_of(st.binary(max_size=5000), structured_mail(), mutated_mail()))
def test_the_parser_raises_only_its_own_clear_error(raw):
    try:
        parsed = parse_mail(raw, Limits(max_nesting_depth=8, max_parts=50, max_decoded_bytes=100_000))
    except MailParseError as exc:
        assert str(exc)
        return
    for att in parsed.attachments:
        assert att.filename and "/" not in att.filename and "\x00" not in att.filename
    assert "\x00" not in parsed.text and "\x00" not in parsed.subject
    if parsed.html is not None:
        assert "<script" not in parsed.html.lower()


_forward_line = st.one_of(
    st.sampled_from(["---------- Forwarded message ---------", "-------- Weitergeleitete Nachricht --------",
                     "-----Original Message-----", "-----Ursprüngliche Nachricht-----", "Begin forwarded message:",
                     "_" * 32, "On Mon, 3 Nov 2026, X wrote:", "> quoted", ""]),
    st.builds(lambda k, v: f"{k}: {v}", st.sampled_from(["From", "Von", "To", "An", "Subject", "Betreff", "Date",
                                                         "Datum", "Cc", "Sent", "Gesendet", "*From:*"]), _text),
    _text,
)


@fuzz_settings(max_examples=BUDGET * 6)
@given(text=st.one_of(st.text(max_size=3000), st.lists(_forward_line, max_size=40).map("\n".join)))
def test_the_forward_finder_takes_any_text(text):
    found = find_inline_forward(text)
    if found is not None:
        assert found.sender.email == "" or "@" in found.sender.email
