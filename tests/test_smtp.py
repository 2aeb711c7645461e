"""SMTP with smtplib as a real client against the real service (listener, intake, worker)."""

from __future__ import annotations

import re
import smtplib
import threading
from email.message import EmailMessage
from functools import partial

import pytest
from sqlalchemy import func, select, text

from crm_inbox.config import replace
from crm_inbox.db import make_engine, make_sessionmaker
from crm_inbox.intake.store import store
from crm_inbox.models import Contact, InboundMessage, InboundState, Interaction
from crm_inbox.runtime import Service
from handlers import smtp as smtp_replies
from handlers.smtp import CrmSmtpHandler, SmtpServer, in_thread
from tests.conftest import CRM, SUPPORT
from tests.mailfactory import make_mail


def send(port: int, raw: bytes, rcpts: list[str] | None = None, sender: str = "klaus@example.com") -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        return client.sendmail(sender, rcpts or [CRM], raw)


def count(factory, model, *where) -> int:
    with factory() as session:
        return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def test_accepted_mail_is_committed_before_250_and_lands_on_the_timeline(service, factory):
    raw = make_mail(subject="Angebot Fräsmaschine")
    send(service.smtp_port, raw)
    # 250 was given: the raw message must already be readable from another connection.
    with factory() as session:
        stored = session.execute(select(InboundMessage)).scalar_one()
        assert stored.raw == raw
        assert stored.envelope_to == [CRM]
        assert stored.peer == "127.0.0.1"
    service.worker.wait_idle()
    with factory() as session:
        interaction = session.execute(select(Interaction)).scalar_one()
        assert interaction.subject == "Angebot Fräsmaschine"
        contact = session.get_one(Contact, interaction.contact_ids[0])
        assert contact.name == "Klaus Müller"
        assert [e.email for e in contact.emails] == ["klaus.mueller@mueller-maschinenbau.de"]
        assert session.get_one(InboundMessage, stored.id).state == InboundState.PROCESSED


def test_recipients_are_matched_case_insensitively_and_support_is_accepted(service, factory):
    refused = send(service.smtp_port, make_mail(), rcpts=["CRM@Beispiel-Firma.DE", SUPPORT])
    assert refused == {}
    assert count(factory, InboundMessage) == 1


@pytest.mark.parametrize("rcpt", [
    "someone@example.com", "crm%example.com@beispiel-firma.de", "crm@beispiel-firma.de@example.com",
    "@relay.example:crm@beispiel-firma.de", "crm@beispiel-firma.de.example.com",
])
def test_other_recipients_are_refused_at_rcpt_so_it_is_no_open_relay(service, factory, rcpt):
    with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as client:
        client.ehlo()
        client.mail("klaus@example.com")
        code, message = client.rcpt(rcpt)
    assert 500 <= code < 600, (code, message)
    assert count(factory, InboundMessage) == 0


def test_oversize_mail_gets_552_and_nothing_is_stored(settings, factory):
    small = replace(settings, smtp={"max_message_bytes": 4096, "port": 0})
    service = Service(small, web=False)
    service.start()
    try:
        raw = make_mail(body="x" * 70 + "\n" * 1 + ("Zeile mit Inhalt\n" * 600))
        with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as caught:
            send(service.smtp_port, raw)
        assert caught.value.smtp_code == 552
    finally:
        service.stop()
    assert count(factory, InboundMessage) == 0


def test_duplicate_delivery_records_nothing_twice(service, factory):
    raw = make_mail()
    send(service.smtp_port, raw)
    # The same message again, as a relay would redeliver it, with one more trace header.
    send(service.smtp_port, b"Received: from relay2.example (relay2.example [192.0.2.7])\r\n" + raw)
    service.worker.wait_idle()
    assert count(factory, InboundMessage) == 1
    assert count(factory, Interaction) == 1
    assert count(factory, Contact) == 1
    with factory() as session:
        assert session.execute(select(InboundMessage.deliveries)).scalar_one() == 2


def test_two_concurrent_deliveries_of_one_message_store_it_once(service, factory):
    raw = make_mail()
    barrier = threading.Barrier(2)
    results: list[object] = []

    def deliver() -> None:
        with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=60) as client:
            client.ehlo()
            client.mail("klaus@example.com")
            client.rcpt(CRM)
            barrier.wait()
            results.append(client.data(raw))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [code for code, _ in results] == [250, 250]  # type: ignore[misc]
    service.worker.wait_idle()
    assert count(factory, InboundMessage) == 1
    assert count(factory, Interaction) == 1


def test_same_message_id_with_different_content_is_kept_twice_and_flagged(service, factory):
    send(service.smtp_port, make_mail(message_id="<same@test.example>", body="first\n"))
    send(service.smtp_port, make_mail(message_id="<same@test.example>", body="second\n"))
    service.worker.wait_idle()
    with factory() as session:
        rows = session.execute(select(InboundMessage)).scalars().all()
    assert len(rows) == 2
    assert all(r.message_id == "<same@test.example>" and r.message_id_conflict for r in rows)
    assert count(factory, Interaction) == 2


def test_malformed_message_ids_never_crash(service, factory):
    for mid in ["<[a1b2c3]@EXCH.example.local>", "no brackets at all", "<unterminated@x", "<>"]:
        send(service.smtp_port, make_mail(message_id=mid))
    service.worker.wait_idle()
    assert count(factory, InboundMessage, InboundMessage.state == InboundState.PROCESSED) == 4


def test_smtplib_sendmail_of_as_bytes_with_bare_lf_is_stored_with_crlf(service, factory):
    # How many scripts send mail: the email package writes "\n" line ends and smtplib sends bytes as they are,
    # stuffing a dot after each "\n". Postfix takes that (smtpd_forbid_bare_newline = normalize); so do we.
    msg = EmailMessage()
    msg["From"] = "Klaus Müller <klaus.mueller@mueller-maschinenbau.de>"
    msg["To"] = CRM
    msg["Subject"] = "Bestellung per Skript"
    msg.set_content("Guten Tag,\n.punkt am Zeilenanfang\n..zwei\n.\nEnde\n")
    raw = msg.as_bytes()
    assert b"\n" in raw and b"\r" not in raw
    with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=60) as client:
        assert client.sendmail("klaus@example.com", [CRM], raw) == {}
    with factory() as session:
        stored = session.execute(select(InboundMessage.raw)).scalar_one()
    # smtplib ends data that does not end in CRLF with one of its own: that empty line is the client's.
    assert stored == raw.replace(b"\n", b"\r\n") + b"\r\n"
    service.worker.wait_idle()
    with factory() as session:
        interaction = session.execute(select(Interaction)).scalar_one()
    assert interaction.subject == "Bestellung per Skript"


def test_bare_lf_in_reject_mode_gets_550(settings, factory):
    strict = Service(replace(settings, smtp={"bare_newline": "reject", "port": 0}), web=False)
    strict.start()
    try:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            send(strict.smtp_port, make_mail().replace(b"\r\n", b"\n"))
    finally:
        strict.stop()
    assert caught.value.smtp_code == 550
    assert caught.value.smtp_error.decode() == smtp_replies.REFUSED_BARE_NEWLINE[4:]
    assert count(factory, InboundMessage) == 0


SMUGGLED = b"MAIL FROM:<x@example.com>\r\nRCPT TO:<" + CRM.encode() + b">\r\nDATA\r\nSmuggled\r\n"
# A false end of data, then a second transaction: it must never be one (SMTP smuggling).
FALSE_ENDS = {"LF.LF": b"\n.\n", "LF.CRLF": b"\n.\r\n", "CRLF.LF": b"\r\n.\n", "CR.CR": b"\r.\r",
              "CR.CRLF": b"\r.\r\n", "CRLF.CR": b"\r\n.\r", "LF.CR": b"\n.\r", "CR.LF": b"\r.\n"}


@pytest.mark.parametrize("mode", ["normalize", "reject"])
@pytest.mark.parametrize("false_end", FALSE_ENDS)
def test_no_false_end_of_data_ends_the_message(settings, factory, mode, false_end):
    service = Service(replace(settings, smtp={"bare_newline": mode, "port": 0}), web=False)
    service.start()
    try:
        with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as client:
            client.ehlo()
            client.mail("a@example.com")
            client.rcpt(CRM)
            client.putcmd("data")
            assert client.getreply()[0] == 354
            client.send(b"From: a@example.com\r\nSubject: smuggle\r\n\r\nline" + FALSE_ENDS[false_end] + SMUGGLED
                        + b".\r\n")
            code, message = client.getreply()
            # The next reply answers our QUIT: no reply was owed to a smuggled MAIL, RCPT or DATA.
            assert client.docmd("QUIT")[0] == 221
    finally:
        service.stop()
    with factory() as session:
        stored = session.execute(select(InboundMessage.raw)).scalars().all()
    if mode == "normalize" and b"\r" not in FALSE_ENDS[false_end].replace(b"\r\n", b""):
        assert code == 250, message  # one message, the would-be commands inside it, every line end CRLF
        assert len(stored) == 1 and SMUGGLED.replace(b"\r\n", b"") in stored[0].replace(b"\r\n", b"")
        assert stored[0].count(b"\n") == stored[0].count(b"\r\n") == stored[0].count(b"\r")
    else:  # a bare CR, or any bare newline in reject mode
        assert (code, message.decode()) == (550, smtp_replies.REFUSED_BARE_NEWLINE[4:])
        assert stored == []


def test_storage_failure_answers_451_without_internal_detail(service, factory, engine):
    with engine.begin() as conn:  # break the database for real: the table the intake writes is gone
        conn.execute(text("ALTER TABLE inbound_messages RENAME TO inbound_messages_away"))
    try:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            send(service.smtp_port, make_mail())
        assert caught.value.smtp_code == 451
        assert caught.value.smtp_error.decode() == smtp_replies.TRY_LATER[4:]
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE inbound_messages_away RENAME TO inbound_messages"))
    # The sender retries later and the message is taken.
    send(service.smtp_port, make_mail())
    assert count(factory, InboundMessage) == 1


def test_database_down_answers_451():
    engine = make_engine("postgresql+psycopg://root@127.0.0.1:1/test")  # nothing listens there
    handler = CrmSmtpHandler(in_thread(partial(store, make_sessionmaker(engine))), frozenset({CRM}))
    server = SmtpServer(handler, "127.0.0.1", 0, max_message_bytes=1_000_000)
    port = server.start()
    try:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            send(port, make_mail())
        assert caught.value.smtp_code == 451
    finally:
        server.stop()


def test_reply_texts_agree_with_their_enhanced_codes():
    for reply in smtp_replies.REPLIES:
        match = re.match(r"^([245])\d\d ([245])\.\d{1,3}\.\d{1,3} \S", reply)
        assert match, reply
        assert match.group(1) == match.group(2), reply


def test_processing_failure_is_kept_and_can_be_retried(settings, factory):
    strict = replace(settings, mail={"max_parts": 3})
    service = Service(strict, web=False)
    service.start()
    raw = make_mail(attachments=[(f"teil{i}.txt", "text/plain", b"Inhalt") for i in range(4)])
    try:
        send(service.smtp_port, raw)
        service.worker.wait_idle()
    finally:
        service.stop()
    with factory() as session:
        failed = session.execute(select(InboundMessage)).scalar_one()
        assert failed.raw == raw  # kept, byte for byte
    assert failed.state == InboundState.FAILED
    assert failed.error == "message has more than 3 MIME parts"
    assert count(factory, Interaction) == 0

    # The operator raises the limit and retries: the kept message is processed.
    from crm_inbox.pipeline.runner import process, retry

    assert retry(factory, [failed.id]) == [failed.id]
    outcome = process(factory, settings, failed.id)
    assert outcome.state == InboundState.PROCESSED
    with factory() as session:
        interaction = session.get_one(Interaction, outcome.interaction_id)
        assert sorted(a.filename for a in interaction.attachments) == [f"teil{i}.txt" for i in range(4)]
