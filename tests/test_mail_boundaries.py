"""MIME boundaries found as Python 3.13 finds them (crm_inbox/mail/boundaries.py): the same parts, and no regular
expression compiled per message on the Pythons that would."""

from __future__ import annotations

import email.feedparser
import re
import sys

import pytest

from crm_inbox.mail import boundaries
from crm_inbox.mail.parse import parse_mail

# Boundaries as mail clients write them, and ones full of characters a regular expression would treat specially.
SEPARATORS = ["------=_Part_4f150f68c4bbfc45", "--Apple-Mail=_8F1B0C55-1E0B-4F3C", "--(a+b)?[c]{2}.*$^|\\",
              "--b", "--=_ with spaces =_"]
ENDINGS = ["", "\n", "\r\n", "\r", "--", "--\n", "--\r\n", "  \t\n", "--  \r\n", "x\n", "-\n", " --\n", "\n\n"]


@pytest.mark.parametrize("separator", SEPARATORS)
def test_a_boundary_line_matches_as_the_stdlibs_pattern_does(separator: str) -> None:
    # the pattern Lib/email/feedparser.py builds for this separator (3.11 and 3.12)
    pattern = "(?P<sep>" + re.escape(separator) + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
    stdlib = re.compile(pattern)
    ours = boundaries.boundary_line(pattern)
    assert ours is not None and ours.separator == separator
    for line in [separator + ending for ending in ENDINGS] + ["", "x" + separator + "\n", separator[:-1] + "\n"]:
        expected, got = stdlib.match(line), ours.match(line)
        assert (expected is None) == (got is None), repr(line)
        if expected and got:
            assert (got.group("end"), got.group("ws"), got.group("linesep")) == (
                expected.group("end"), expected.group("ws"), expected.group("linesep")), repr(line)


def test_other_patterns_stay_regular_expressions() -> None:
    assert boundaries.boundary_line(r"(\r\n|\r|\n)") is None
    assert email.feedparser.re.compile(r"(\r\n|\r|\n)\Z").search("a\n") is not None


NESTED = (
    b"From: Anna Berg <anna@kunde.example>\r\nTo: crm@firma.example\r\nSubject: Angebot\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="(outer)+?"\r\n\r\n'
    b"preamble\r\n"
    b"--(outer)+?\r\n"
    b'Content-Type: multipart/alternative; boundary="=_inner.*"\r\n\r\n'
    b"--=_inner.*\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Guten Tag,\r\n--(outer)+? is not a boundary here\r\nbitte ein Angebot.\r\n"
    b"--=_inner.*\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Guten Tag, bitte ein Angebot.</p>\r\n"
    b"--=_inner.*--\r\n"
    b"--(outer)+?\r\n"
    b'Content-Type: text/plain; name="notiz.txt"\r\nContent-Disposition: attachment; filename="notiz.txt"\r\n\r\n'
    b"Notiz\r\n"
    b"--(outer)+?--  \r\n"
    b"epilogue\r\n")


def test_a_nested_multipart_message_reads_the_same_with_the_stdlibs_patterns(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ours = parse_mail(NESTED)
    monkeypatch.setattr(email.feedparser, "re", re)
    stdlib = parse_mail(NESTED)
    assert ours.text == stdlib.text == "Guten Tag,\n--(outer)+? is not a boundary here\nbitte ein Angebot."
    assert [(a.filename, a.content) for a in ours.attachments] == [("notiz.txt", b"Notiz")]
    assert [(a.filename, a.content) for a in stdlib.attachments] == [("notiz.txt", b"Notiz")]
    assert ours.html == stdlib.html
    assert [p.get_content_type() for p in ours.message.walk()] == [
        p.get_content_type() for p in stdlib.message.walk()]


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.13's parser finds boundaries this way itself")
def test_parsing_multipart_mail_compiles_no_regular_expression(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    real = re.compile

    def counting(pattern: str, flags: int = 0) -> re.Pattern[str]:
        compiled.append(pattern)
        return real(pattern, flags)

    monkeypatch.setattr(re, "compile", counting)
    parse_mail(NESTED)
    # a feedparser whose boundary pattern changed would compile it here again: the matcher would be dead code
    assert not [p for p in compiled if "(?P<sep>" in p]
