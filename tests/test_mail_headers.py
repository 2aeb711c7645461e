"""Headers, charsets and structure as real senders write them: what is stored must read as the sender wrote it.

Raw 8-bit headers (RFC 6532 UTF-8 and legacy charsets sent unencoded), ISO-2022-JP with vendor characters,
UTF-7 encoded words, bodies without a declared charset, broken header blocks, a lone named text part, and
Date values outside the accepted range. The address side of the same issue lives in tests/mail/ (corpus).
"""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from crm_inbox.intake.store import Envelope, store
from crm_inbox.mail.addresses import Address
from crm_inbox.mail.parse import parse_mail
from crm_inbox.models import Attachment, Contact, InboundMessage, InboundState, Interaction
from crm_inbox.pipeline.runner import process
from crm_inbox.time_range import in_range
from tests.conftest import CRM

# (label, charset, the body's Content-Type charset parameter or None, sender name, subject, body)
LEGACY = [
    ("gb2312-declared", "gb2312", "gb2312", "张伟", "关于FM-400铣床的报价",
     "您好！\n\n请问贵公司FM-400铣床的报价是多少？我们需要两台，希望下周前能收到回复。\n\n谢谢！\n"),
    ("big5-declared", "big5", "big5", "陳小明", "關於報價的問題",
     "您好，請問貴公司的產品報價是多少？我們需要一百台機器，希望下週前能收到回覆。謝謝！\n"),
    ("shift_jis-declared", "shift_jis", "shift_jis", "山田太郎", "お見積りについて",
     "いつもお世話になっております。機械百台の見積もりをお願いいたします。よろしくお願いいたします。\n"),
    ("koi8-r-undeclared", "koi8-r", None, "Иван Петров", "Вопрос о цене",
     "Здравствуйте! Пожалуйста, пришлите нам коммерческое предложение на сто станков. Спасибо.\n"),
    ("iso-8859-2-undeclared", "iso-8859-2", None, "Łukasz Wójcik", "Zapytanie ofertowe",
     "Dzień dobry, proszę o przesłanie oferty na sto maszyn. Pozdrawiam serdecznie, Łukasz Wójcik\n"),
    ("gb2312-undeclared", "gb2312", None, "王芳", "发票问题",
     "您好，我们上个月的发票金额不对，请重新开一张发票并寄给我们。谢谢！\n"),
    ("latin-1-header-only", "iso-8859-1", "us-ascii", "Rémi Lefèvre", "Ups Rémi: mauvaise adresse",
     "Hello, sorry, wrong delivery address.\n"),
]


def legacy_mail(charset: str, declared: str | None, name: str, subject: str, body: str) -> bytes:
    ctype = f"text/plain; charset={declared}" if declared else "text/plain"
    head = (f"From: {name} <sender@example.net>\r\nTo: {CRM}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 2 Nov 2026 10:00:00 +0100\r\nMessage-ID: <{abs(hash(subject))}@example.net>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    return head.encode(charset) + body.replace("\n", "\r\n").encode(charset)


def run(factory, settings, raw: bytes) -> Interaction:
    accepted = store(factory, raw, Envelope(mail_from="sender@example.net", rcpt_to=(CRM,), peer="203.0.113.9"))
    process(factory, settings, accepted.inbound_id)
    with factory() as session:
        row = session.get_one(InboundMessage, accepted.inbound_id)
        assert row.state == InboundState.PROCESSED, row.error
        interaction = session.execute(select(Interaction)).scalars().one()
        session.expunge(interaction)
        return interaction


@pytest.mark.parametrize(("charset", "declared", "name", "subject", "body"), [case[1:] for case in LEGACY],
                         ids=[case[0] for case in LEGACY])
def test_raw_8bit_headers_are_stored_as_the_sender_wrote_them(factory, settings, charset, declared, name,
                                                              subject, body):
    interaction = run(factory, settings, legacy_mail(charset, declared, name, subject, body))
    assert interaction.subject == subject
    assert "\ufffd" not in (interaction.text or "")
    assert body.split()[0] in (interaction.text or "")
    with factory() as session:
        assert list(session.execute(select(Contact.name)).scalars()) == [name]


def test_raw_utf8_subject_is_not_replacement_characters():
    mail = parse_mail("From: Rémi <r@example.com>\r\nSubject: Ups Rémi\r\n\r\nx\r\n".encode())
    assert mail.subject == "Ups Rémi"
    assert mail.from_ == [Address("Rémi", "r@example.com")]


# "お見積り①髙" as Windows writes ISO-2022-JP (cp50220): ① is NEC row 13 (0x2D21), 髙 an IBM extension
# in row 92 (0x7C62). Python's iso2022_jp codecs refuse both.
ISO2022JP_MS = b"\x1b$B$*8+@Q$j-!|b\x1b(B"
ISO2022JP_MS_TEXT = "お見積り①髙"


def test_iso_2022_jp_with_nec_and_ibm_characters():
    with pytest.raises(UnicodeDecodeError):
        ISO2022JP_MS.decode("iso2022_jp_ext")
    word = base64.b64encode(ISO2022JP_MS).decode()
    name = base64.b64encode("山田".encode("iso2022_jp")).decode()
    raw = (f"From: =?ISO-2022-JP?B?{name}?= <yamada@example.jp>\r\n"
           f"Subject: =?ISO-2022-JP?B?{word}?=\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n").encode()
    mail = parse_mail(raw + ISO2022JP_MS + b"\r\n")
    assert mail.subject == ISO2022JP_MS_TEXT
    assert mail.text.strip() == ISO2022JP_MS_TEXT
    assert mail.from_ == [Address("山田", "yamada@example.jp")]


def test_raw_iso_2022_jp_header_without_encoded_words():
    mail = parse_mail(b"From: a@example.jp\r\nSubject: " + ISO2022JP_MS + b"\r\n\r\nx\r\n")
    assert mail.subject == ISO2022JP_MS_TEXT


def test_utf7_encoded_words():
    mail = parse_mail(b"From: =?UTF-7?Q?J+APw-rgen_M+APw-ller?= <jm@example.com>\r\n"
                      b"Subject: =?utf-7?B?R3IrQVB3QTN3LWUgYXVzIEsrQVBZLWxu?=\r\n\r\nx\r\n")
    assert mail.subject == "Grüße aus Köln"
    assert mail.from_ == [Address("Jürgen Müller", "jm@example.com")]


def test_encoded_words_split_inside_a_character_and_with_broken_padding():
    # "Grüße": encoders cut UTF-8 between two words; the second word lacks its base64 padding.
    mail = parse_mail(b"Subject: =?utf-8?q?Gr=C3?= =?utf-8?q?=BC=C3=9Fe?= =?utf-8?b?IGF1cyBLw7Zsbg?=\r\n\r\nx")
    assert mail.subject == "Grüße aus Köln"


def test_body_without_declared_charset_is_detected_not_cp1252_mojibake(factory, settings):
    body = "Здравствуйте! Пожалуйста, пришлите нам коммерческое предложение на сто станков. Спасибо."
    raw = (b"From: ivan@example.org\r\nTo: crm@beispiel-firma.de\r\nSubject: offer\r\n"
           b"Content-Type: text/plain\r\n\r\n" + body.encode("cp1251") + b"\r\n")
    assert run(factory, settings, raw).text == body


@pytest.mark.parametrize("head", [
    'Content-Type: text/plain; charset=utf-8; name="Nachricht.txt"\r\n',
    'Content-Type: text/plain; charset=utf-8; name="Nachricht.txt"\r\nContent-Disposition: inline\r\n',
])
def test_a_lone_named_text_part_is_the_body(factory, settings, head):
    raw = (b"From: eva@wagner-technik.de\r\nTo: crm@beispiel-firma.de\r\nSubject: Bestellung\r\nMIME-Version: 1.0\r\n"
           + head.encode() + "\r\nBitte liefern Sie 20 Stück bis Freitag.\r\n".encode())
    interaction = run(factory, settings, raw)
    assert interaction.text == "Bitte liefern Sie 20 Stück bis Freitag."
    with factory() as session:
        assert session.execute(select(Attachment.filename)).scalars().all() == []


def test_a_lone_named_text_part_beside_a_file_is_the_body():
    raw = (b"From: eva@wagner-technik.de\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           b'--b\r\nContent-Type: text/plain; charset=utf-8; name="body.txt"\r\n\r\nSee the drawing.\r\n'
           b'--b\r\nContent-Type: application/pdf; name="drawing.pdf"\r\nContent-Disposition: attachment; '
           b'filename="drawing.pdf"\r\n\r\n%PDF-1.4\r\n--b--\r\n')
    mail = parse_mail(raw)
    assert mail.text == "See the drawing."
    assert [a.filename for a in mail.attachments] == ["drawing.pdf"]


def test_named_text_parts_stay_attachments_beside_a_body_or_when_marked_as_attachment():
    beside = (b"From: eva@wagner-technik.de\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
              b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
              b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe list is attached.\r\n"
              b'--b\r\nContent-Type: text/plain; name="list.txt"\r\n\r\nitem 1\r\n--b--\r\n')
    mail = parse_mail(beside)
    assert mail.text == "The list is attached."
    assert [a.filename for a in mail.attachments] == ["list.txt"]
    marked = (b"From: eva@wagner-technik.de\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
              b'Content-Type: text/plain; name="list.txt"\r\nContent-Disposition: attachment\r\n\r\nitem 1\r\n')
    mail = parse_mail(marked)
    assert mail.text == "" and [a.filename for a in mail.attachments] == ["list.txt"]


def test_unindented_continuation_lines_do_not_end_the_header_block():
    mail = parse_mail(b"Subject: Angebot und Lieferung der\r\nErsatzteile im Dezember\r\n"
                      b"From: Eva <eva@example.com>\r\nSubject : second\r\nTo : crm@beispiel-firma.de\r\n\r\nHallo\r\n")
    assert mail.subject == "Angebot und Lieferung der Ersatzteile im Dezember"
    assert mail.from_ == [Address("Eva", "eva@example.com")]
    assert [a.email for a in mail.to] == ["crm@beispiel-firma.de"]  # "To :" (RFC 822's space before the colon)
    assert mail.text == "Hallo"


def test_a_missing_blank_line_after_the_headers_still_starts_the_body():
    mail = parse_mail(b"From: eva@example.com\r\nSubject: x\r\nHallo Anna,\r\nbis morgen.\r\n")
    assert mail.subject == "x"
    assert "Hallo Anna," in mail.text


@pytest.mark.parametrize("date", ["Mon, 2 Mar 1850 10:00:00 +0000", "Fri, 31 Dec 9999 23:59:59 -1400",
                                  "Tue, 1 Jan 2200 00:00:00 +0000"])
def test_a_date_outside_the_accepted_range_counts_as_missing(factory, settings, date):
    assert parse_mail(f"From: a@example.com\r\nDate: {date}\r\n\r\nx".encode()).date is None
    raw = f"From: eva@wagner-technik.de\r\nTo: {CRM}\r\nSubject: alt\r\nDate: {date}\r\n\r\nx\r\n".encode()
    interaction = run(factory, settings, raw)
    assert in_range(interaction.occurred_at)
    assert interaction.occurred_at.year >= 2000  # the time it arrived, as for a missing Date


def test_a_header_mixing_utf8_and_latin1_bytes_reads_each_part_in_its_charset():
    mail = parse_mail(b"From: a@example.com\r\nSubject: Angebot f\xc3\xbcr \xe4\xf6\xfc gemischt\r\n\r\nx\r\n")
    assert mail.subject == "Angebot für äöü gemischt"


@pytest.mark.parametrize(("text", "charset"), [
    ("Иван Петров", "cp1251"), ("Προσφορά Γιώργος", "iso-8859-7"), ("Łukasz Wójcik", "iso-8859-2"),
    ("Señor Muñoz", "iso-8859-1"), ("お見積りについて 山田太郎", "euc-jp"), ("견적 문의 김민수", "euc-kr"),
])
def test_short_legacy_subjects_without_any_body_hint(text, charset):
    raw = b"From: a@example.com\r\nSubject: " + text.encode(charset) + b"\r\n\r\nhello\r\n"
    assert parse_mail(raw).subject == text


def test_utf8_body_with_one_damaged_byte_stays_utf8():
    body = ("Профессионалы.ru — ведущая деловая сеть России и СНГ для поиска специалистов. " * 3).encode()
    damaged = body[:40] + b"\xff" + body[41:]
    mail = parse_mail(b"From: a@example.com\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + damaged)
    assert mail.text.startswith("Профессионалы.ru — вед")
    assert mail.text.count("\ufffd") <= 2
    assert "деловая сеть России и СНГ для поиска специалистов" in mail.text


def test_a_malformed_encoded_word_is_shown_as_it_came():
    mail = parse_mail(b"From: a@example.com\r\nSubject: =?utf-8?B?!!!kaputt?= und =?utf-8?q?gut?=\r\n\r\nx")
    assert mail.subject == "=?utf-8?B?!!!kaputt?= und gut"


def test_an_unbracketed_address_after_a_name_is_not_guessed():
    mail = parse_mail(b"From: Rolf Berg/Example@example.com\r\nSubject: x\r\n\r\nx")
    assert mail.author is not None and mail.author.email == ""


def test_an_encoded_name_that_reads_like_an_address_is_stored_as_a_quoted_name(factory, settings):
    name = base64.b64encode(b"chef@beispiel-firma.de").decode()
    raw = f"From: =?utf-8?b?{name}?= <attacker@evil.example>\r\nTo: {CRM}\r\nSubject: bank\r\n\r\nx\r\n".encode()
    interaction = run(factory, settings, raw)
    assert interaction.details["from"] == '"chef@beispiel-firma.de" <attacker@evil.example>'
    with factory() as session:
        emails = [e.email for c in session.execute(select(Contact)).scalars() for e in c.emails]
    assert emails == ["attacker@evil.example"]


@pytest.mark.parametrize("sender", ["\x00.schneider@example.com", "m.sch\x01neider@example.com",
                                    "Markus <m.schneider\x7f@example.com>"])
def test_an_address_with_a_control_character_is_no_address(factory, settings, sender):
    """A NUL in a broken header must not become an address: PostgreSQL refuses NUL in text, so the mail failed
    with an internal error in match_contacts (found by the fuzz test)."""
    raw = (f"From: {sender}\r\nTo: {CRM}\r\nSubject: Rueckruf\r\nMessage-ID: <ctl@example.com>\r\n\r\n"
           "Bitte um Rueckruf.\r\n").encode("latin-1")
    interaction = run(factory, settings, raw)
    with factory() as session:
        # The From address is unusable, so the envelope sender is the author (its reason is recorded).
        leads = [e.email for c in session.execute(select(Contact)).scalars() for e in c.emails]
    assert leads == ["sender@example.net"]
    assert interaction.subject == "Rueckruf"
    assert "envelope" in (interaction.attribution_reason or "")
