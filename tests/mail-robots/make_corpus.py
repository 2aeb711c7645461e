"""Writes the robot corpus: bounces, delivery reports, feedback reports, list-manager errors and
auto-replies in the shapes real MTAs and mail programs send, one NAME.eml per case with NAME.json
beside it (what must come out). Run it after changing a case: ``.venv/bin/python tests/mail-robots/make_corpus.py``.

All mail is written here by hand after the published formats and samples of each program; addresses use
the test world's domains and reserved example domains only.
"""

# ruff: noqa: E501  (mail text: each notice reads best as the MTA writes it, one line per line)
from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

HERE = Path(__file__).parent
CRM = "crm@beispiel-firma.de"
STAFF = "anna.schmidt@beispiel-firma.de"
KLAUS = "klaus.mueller@mueller-maschinenbau.de"  # a known contact in the tests
DATE = "Tue, 1 Dec 2026 10:15:00 +0100"

CASES: dict[str, tuple[bytes, dict[str, object]]] = {}


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def case(name: str, kind: str, description: str, raw: str | bytes, *, failed: list[str] | None = None,
         mail_from: str | None = None, source: str = "file", automatic: bool = True) -> None:
    """``source`` file/imap: no envelope (the hard case: only the message can tell); smtp: ``mail_from``."""
    data = raw if isinstance(raw, bytes) else crlf(raw)
    CASES[name] = (data, {"description": description, "kind": kind, "automatic": automatic,
                          "failed": failed or [], "source": source, "mail_from": mail_from})


def original(to: str = KLAUS, subject: str = "Angebot 4711", cc: str | None = None) -> str:
    """The headers of the message that bounced: Anna's mail to a customer."""
    cc_line = f"Cc: {cc}\n" if cc else ""
    return (f"From: Anna Schmidt <{STAFF}>\nTo: {to}\n{cc_line}Subject: {subject}\nDate: Mon, 30 Nov 2026 16:02:11 +0100\n"
            f"Message-ID: <angebot-4711.{zlib.crc32((to + subject).encode())}@beispiel-firma.de>\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n")


def returned(to: str = KLAUS, subject: str = "Angebot 4711", cc: str | None = None) -> str:
    return original(to, subject, cc) + "\nSehr geehrter Herr Müller,\nanbei unser Angebot.\nAnna Schmidt\n"


def report(name: str, description: str, *, frm: str, subject: str, text: str, status: str, headers: str = "",
           failed: list[str], mta: str = "mx.example.net", orig: str | None = None, orig_type: str = "message/rfc822",
           mail_from: str | None = None, source: str = "file", status_cte: str | None = None,
           html: str | None = None, report_type: str = "delivery-status",
           status_type: str = "message/delivery-status", kind: str = "dsn") -> None:
    """A multipart/report DSN: notice text (and HTML), the delivery-status part, the original."""
    orig = returned() if orig is None else orig
    if status_cte == "base64":
        status_body = base64.encodebytes(crlf(status)).decode()
        status_head = f"Content-Type: {status_type}\nContent-Transfer-Encoding: base64\n"
    else:
        status_body = status
        status_head = f"Content-Type: {status_type}\n"
    notice = f"--NOTICE\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{text}\n"
    if html is not None:
        notice = ('Content-Type: multipart/alternative; boundary="ALT"\n\n'
                  f"--ALT\nContent-Type: text/plain; charset=utf-8\n\n{text}\n"
                  f"--ALT\nContent-Type: text/html; charset=utf-8\n\n{html}\n--ALT--\n")
        notice = "--NOTICE\n" + notice
    raw = (f"Return-Path: <>\nReceived: from {mta} (unknown [198.51.100.25])\n\tby mx.beispiel-firma.de; {DATE}\n"
           f"From: {frm}\nTo: {STAFF}\nSubject: {subject}\nDate: {DATE}\nMessage-ID: <{name}.dsn@{mta}>\n"
           f"{headers}MIME-Version: 1.0\n"
           f'Content-Type: multipart/report; report-type={report_type}; boundary="NOTICE"\n\n'
           f"This is a MIME-encapsulated message.\n\n{notice}"
           f"--NOTICE\n{status_head}\n{status_body}\n"
           f"--NOTICE\nContent-Type: {orig_type}\n\n{orig}\n--NOTICE--\n")
    if source == "file":
        raw = raw.replace("Return-Path: <>\n", "")  # a saved .eml often lost it: the rest must tell
    case(name, kind, description, raw, failed=failed, mail_from=mail_from, source=source)


def plain(name: str, kind: str, description: str, *, frm: str, subject: str, body: str, headers: str = "",
          failed: list[str] | None = None, mail_from: str | None = None, source: str = "file",
          to: str = STAFF, attach_original: str | None = None, content_type: str = "text/plain; charset=utf-8",
          automatic: bool = True) -> None:
    """A one-part notice (or notice + attached original, multipart/mixed)."""
    trace = "Return-Path: <>\n" if source == "imap" else ""  # the delivering MTA wrote it; IMAP keeps it
    head = (trace + f"Received: from mx.example.net (unknown [198.51.100.25])\n\tby mx.beispiel-firma.de; {DATE}\n"
            f"From: {frm}\nTo: {to}\nSubject: {subject}\nDate: {DATE}\nMessage-ID: <{name}@mail.example.net>\n"
            f"{headers}MIME-Version: 1.0\n")
    if attach_original is None:
        raw = head + f"Content-Type: {content_type}\nContent-Transfer-Encoding: 8bit\n\n{body}\n"
    else:
        raw = (head + 'Content-Type: multipart/mixed; boundary="MIX"\n\n'
               f"--MIX\nContent-Type: {content_type}\nContent-Transfer-Encoding: 8bit\n\n{body}\n"
               f"--MIX\nContent-Type: message/rfc822\nContent-Disposition: attachment\n\n{attach_original}\n--MIX--\n")
    case(name, kind, description, raw, failed=failed, mail_from=mail_from, source=source, automatic=automatic)


def dsn_fields(*blocks: tuple[str, str, str, str], mta: str = "mx.example.net", sep: str = "\n") -> str:
    """Per-message fields, then one block per (recipient, action, status, diagnostic)."""
    out = f"Reporting-MTA: dns; {mta}\nX-Postfix-Queue-ID: 4F2A81C0A3\nArrival-Date: {DATE}\n"
    for recipient, action, status, diagnostic in blocks:
        out += sep + f"Final-Recipient: rfc822; {recipient}\nOriginal-Recipient: rfc822;{recipient}\n"
        out += f"Action: {action}\nStatus: {status}\n"
        if diagnostic:
            out += f"Remote-MTA: dns; mx.{recipient.rpartition('@')[2]}\nDiagnostic-Code: smtp; {diagnostic}\n"
    return out


UNKNOWN_1 = "m.weber@example.org"
UNKNOWN_2 = "info@kunde-nord.example"
UNKNOWN_3 = "j.vos@example.net"

# --- RFC 3464 delivery status notifications ----------------------------------------------------------------

report("dsn-postfix-known", "Postfix DSN about a known contact's address", frm="MAILER-DAEMON@mx.example.net (Mail Delivery System)",
       subject="Undelivered Mail Returned to Sender", failed=[KLAUS], mail_from="<>", source="smtp",
       text="This is the mail system at host mx.example.net.\n\nI'm sorry to have to inform you that your message could not\n"
            "be delivered to one or more recipients. It's attached below.\n\n                   The mail system\n\n"
            f"<{KLAUS}>: host mx.mueller-maschinenbau.de[203.0.113.20] said: 550 5.1.1\n    <{KLAUS}>: Recipient address rejected: User unknown (in reply to RCPT TO command)\n",
       status=dsn_fields((KLAUS, "failed", "5.1.1", f"550 5.1.1 <{KLAUS}>: Recipient address rejected: User unknown")))
report("dsn-postfix-three", "Postfix DSN with three failed recipients, every block kept",
       frm="Mail Delivery System <MAILER-DAEMON@mx.example.net>", subject="Undelivered Mail Returned to Sender",
       failed=[KLAUS, UNKNOWN_1, UNKNOWN_2], orig=returned(to=f"{KLAUS}, {UNKNOWN_1}", cc=UNKNOWN_2),
       text="This is the mail system at host mx.example.net.\n\nI'm sorry ...\n\n                   The mail system\n\n"
            f"<{KLAUS}>: host ... said: 550 5.1.1 User unknown\n<{UNKNOWN_1}>: host ... said: 550 5.1.1 User unknown\n"
            f"<{UNKNOWN_2}>: host ... said: 552 5.2.2 Mailbox full\n",
       status=dsn_fields((KLAUS, "failed", "5.1.1", "550 5.1.1 User unknown"),
                         (UNKNOWN_1, "failed", "5.1.1", "550 5.1.1 User unknown"),
                         (UNKNOWN_2, "failed", "5.2.2", "552 5.2.2 Mailbox full")))
report("dsn-blank-lines-with-spaces", "DSN whose per-recipient blocks are separated by lines holding a space",
       frm="MAILER-DAEMON@relay.example.com", subject="Delivery Status Notification (Failure)",
       failed=[UNKNOWN_1, UNKNOWN_3], text="Delivery to the following recipients failed.\n",
       status=dsn_fields((UNKNOWN_1, "failed", "5.1.1", "550 no such user"), (UNKNOWN_3, "failed", "5.1.10", "550 5.1.10 RecipientNotFound"),
                         sep=" \n"))
report("dsn-base64-status", "DSN whose delivery-status part is base64-encoded (Exchange, some gateways)",
       frm="postmaster@example.com", subject="Undeliverable: Angebot 4711", failed=[KLAUS, UNKNOWN_3],
       text="Delivery has failed to these recipients or groups:\n", status_cte="base64",
       status=dsn_fields((KLAUS, "failed", "5.1.1", "550 5.1.1 RESOLVER.ADR.RecipNotFound"),
                         (UNKNOWN_3, "failed", "5.4.1", "550 5.4.1 Recipient address rejected: Access denied")))
report("dsn-folded-fields", "DSN with folded Final-Recipient and Diagnostic-Code fields",
       frm="Mail Delivery Subsystem <MAILER-DAEMON@mail.example.org>", subject="Returned mail: see transcript for details",
       failed=[UNKNOWN_2], text="The original message was received at Tue, 1 Dec 2026\n",
       status=f"Reporting-MTA: dns; mail.example.org\n\nFinal-Recipient: RFC822;\n <{UNKNOWN_2}>\nAction: failed\n"
              "Status: 5.1.1\nDiagnostic-Code: SMTP; 550 5.1.1\n    User unknown\n")
report("dsn-mixed-actions", "DSN with failed, delayed and delivered blocks: only the failed one bounced",
       frm="MAILER-DAEMON@mx.example.net", subject="Delivery Status Notification", failed=[UNKNOWN_3],
       text="This is a delivery status notification.\n",
       status=dsn_fields((KLAUS, "delivered", "2.0.0", ""), (UNKNOWN_1, "delayed", "4.4.1", "connection timed out"),
                         (UNKNOWN_3, "failed", "5.1.1", "550 unknown user")))
report("dsn-delay-only", "Postfix delay notice (Action: delayed): automatic, nothing failed",
       frm="MAILER-DAEMON@mx.example.net (Mail Delivery System)", subject="Delayed Mail (still being retried)",
       failed=[], text="This is the mail system at host mx.example.net.\n\n#######\n# THIS IS A WARNING ONLY. YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\n"
       f"                   The mail system\n\n<{UNKNOWN_1}>: connect to mx.example.org[192.0.2.9]:25: Connection timed out\n",
       status=dsn_fields((UNKNOWN_1, "delayed", "4.4.1", "connect to mx.example.org: Connection timed out")), kind="dsn-delay")
report("dsn-exchange-o365", "Office 365 NDR: HTML and text, failed recipient only in the DSN and in the HTML",
       frm="Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@beispiel-firma.onmicrosoft.com>",
       subject="Unzustellbar: Angebot 4711", failed=[KLAUS],
       text=f"Ihre Nachricht an {KLAUS} konnte nicht zugestellt werden.\n\nklaus.mueller wurde in mueller-maschinenbau.de nicht gefunden.\n",
       html=f"<p>Ihre Nachricht an <a href='mailto:{KLAUS}'>{KLAUS}</a> konnte nicht zugestellt werden.</p>",
       headers="X-MS-Exchange-Message-Is-Ndr:\nX-Auto-Response-Suppress: All\n",
       orig=original(), orig_type="text/rfc822-headers",
       status="Reporting-MTA: dns;AM0PR01MB1234.eurprd01.prod.outlook.com\nReceived-From-MTA: dns;AM0PR01MB1234\n"
              f"Arrival-Date: {DATE}\n\nFinal-Recipient: rfc822;{KLAUS}\nAction: failed\nStatus: 5.1.10\n"
              "Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup\n")
report("dsn-gmail", "Gmail DSN (Address not found)", frm="Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
       subject="Delivery Status Notification (Failure)", failed=[UNKNOWN_1],
       text=f"** Address not found **\n\nYour message wasn't delivered to {UNKNOWN_1} because the address couldn't be found, "
            "or is unable to receive mail.\n\nLearn more here: https://support.google.com/mail/?p=NoSuchUser\n",
       status="Reporting-MTA: dns; googlemail.com\nReceived-From-MTA: dns; anna@beispiel-firma.de\n"
              f"Arrival-Date: {DATE}\nX-Original-Message-ID: <x@beispiel-firma.de>\n\nFinal-Recipient: rfc822; {UNKNOWN_1}\n"
              "Action: failed\nStatus: 5.1.1\nRemote-MTA: dns; mx.example.org. (192.0.2.1, the server for the domain example.org.)\n"
              "Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist.\nLast-Attempt-Date: Tue, 01 Dec 2026 01:15:02 -0800 (PST)\n")
report("dsn-ses", "Amazon SES bounce as multipart/report", frm="MAILER-DAEMON@amazonses.com",
       subject="Delivery Status Notification (Failure)", failed=[UNKNOWN_3], mta="a27-19.smtp-out.eu-central-1.amazonses.com",
       text=f"An error occurred while trying to deliver the mail to the following recipients:\n{UNKNOWN_3}\n",
       status=dsn_fields((UNKNOWN_3, "failed", "5.1.1", "550 5.1.1 user unknown"), mta="a27-19.smtp-out.eu-central-1.amazonses.com"))
report("dsn-sendmail", "Sendmail DSN with text/rfc822-headers", frm="Mail Delivery Subsystem <MAILER-DAEMON@mail.example.org>",
       subject="Returned mail: see transcript for details", failed=[UNKNOWN_2], orig=original(to=UNKNOWN_2),
       orig_type="text/rfc822-headers",
       text="The original message was received at Tue, 1 Dec 2026 10:14:58 +0100\nfrom mx.beispiel-firma.de [192.0.2.1]\n\n"
            f"   ----- The following addresses had permanent fatal errors -----\n<{UNKNOWN_2}>\n    (reason: 550 5.1.1 User unknown)\n\n"
            f"   ----- Transcript of session follows -----\n... while talking to mx.kunde-nord.example.:\n>>> RCPT To:<{UNKNOWN_2}>\n<<< 550 5.1.1 User unknown\n",
       status=dsn_fields((UNKNOWN_2, "failed", "5.1.1", "550 5.1.1 User unknown"), mta="mail.example.org"))
report("dsn-courier", "Courier DSN", frm='"Courier mail server at mx.example.org" <@>', subject="NOTICE: mail delivery status.",
       failed=[KLAUS],
       text="This is a delivery status notification from mx.example.org,\nrunning the Courier mail server, version 1.1.\n\n"
            f"Your message to the following recipients cannot be delivered:\n\n<{KLAUS}>:\n    mx.mueller-maschinenbau.de [203.0.113.20]:\n"
            f">>> RCPT TO:<{KLAUS}>\n<<< 550 5.1.1 User unknown\n",
       status=dsn_fields((KLAUS, "failed", "5.0.0", "550 5.1.1 User unknown"), mta="mx.example.org"))
report("dsn-global-utf8", "RFC 6533 message/global-delivery-status with a utf-8 address type",
       frm="MAILER-DAEMON@mx.example.net", subject="Undelivered Mail Returned to Sender", failed=[UNKNOWN_1],
       text="Your message could not be delivered.\n", status_type="message/global-delivery-status",
       status=f"Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: utf-8; {UNKNOWN_1}\nAction: failed\nStatus: 5.1.1\n")
report("dsn-no-action", "DSN that omits Action: a 5.x.x status means failed", frm="postmaster@mail.example.com",
       subject="Delivery Failure", failed=[UNKNOWN_3], text="Your mail could not be delivered.\n",
       status=f"Reporting-MTA: dns; mail.example.com\n\nFinal-Recipient: rfc822; <{UNKNOWN_3}>\nStatus: 5.0.0\n")
report("dsn-smtp-null-sender", "a DSN over SMTP with MAIL FROM:<>", frm="MAILER-DAEMON@mx.example.net",
       subject="Undelivered Mail Returned to Sender", failed=[UNKNOWN_2], mail_from="<>", source="smtp",
       text="The mail system\n", status=dsn_fields((UNKNOWN_2, "failed", "5.1.1", "550 User unknown")))
report("dsn-imap-return-path", "a DSN fetched over IMAP, with Return-Path: <>", frm="MAILER-DAEMON@mx.example.net",
       subject="Mail delivery failed", failed=[UNKNOWN_1], source="imap",
       text="Delivery failed.\n", status=dsn_fields((UNKNOWN_1, "failed", "5.1.1", "550 User unknown")))

# --- Non-standard bounces: text only, each in its MTA's words -----------------------------------------------

plain("bounce-postfix-text", "bounce", "Postfix bounce as plain text (notify without DSN)",
      frm="MAILER-DAEMON@mx.example.net (Mail Delivery System)", subject="Undelivered Mail Returned to Sender",
      failed=[KLAUS, UNKNOWN_1], attach_original=returned(to=f"{KLAUS}, {UNKNOWN_1}"),
      body="This is the mail system at host mx.example.net.\n\nI'm sorry to have to inform you that your message could not\n"
           "be delivered to one or more recipients. It's attached below.\n\nFor further assistance, please send mail to postmaster.\n\n"
           "If you do so, please include this problem report. You can\ndelete your own text from the attached returned message.\n\n"
           f"                   The mail system\n\n<{KLAUS}>: host mx.mueller-maschinenbau.de[203.0.113.20] said:\n    550 5.1.1 <{KLAUS}>: Recipient address rejected: User unknown in\n"
           f"    virtual mailbox table (in reply to RCPT TO command)\n\n<{UNKNOWN_1}> (expanded from <sales@example.org>): host\n    mx.example.org[192.0.2.7] said: 552 5.2.2 Mailbox full\n")
plain("bounce-qmail", "bounce", "qmail-send bounce with two recipients and the original inline",
      frm="MAILER-DAEMON@mail.example.com", subject="failure notice", failed=[UNKNOWN_2, UNKNOWN_3],
      body="Hi. This is the qmail-send program at mail.example.com.\nI'm afraid I wasn't able to deliver your message to the following addresses.\n"
           "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
           f"<{UNKNOWN_2}>:\n192.0.2.44 does not like recipient.\nRemote host said: 550 5.1.1 <{UNKNOWN_2}>: Recipient address rejected\nGiving up on 192.0.2.44.\n\n"
           f"<{UNKNOWN_3}>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n--- Below this line is a copy of the message.\n\n"
           + returned(to=f"{UNKNOWN_2}, {UNKNOWN_3}", cc=KLAUS))
plain("bounce-exim", "bounce", "Exim bounce with X-Failed-Recipients", frm="Mail Delivery System <Mailer-Daemon@mail.example.org>",
      subject="Mail delivery failed: returning message to sender", failed=[UNKNOWN_1],
      headers=f"X-Failed-Recipients: {UNKNOWN_1}\nAuto-Submitted: auto-replied\n",
      body="This message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of its\n"
           f"recipients. This is a permanent error. The following address(es) failed:\n\n  {UNKNOWN_1}\n    host mx.example.org [192.0.2.7]\n"
           f"    SMTP error from remote mail server after RCPT TO:<{UNKNOWN_1}>:\n    550 5.1.1 User unknown\n\n"
           "------ This is a copy of the message, including all the headers. ------\n\n" + returned(to=UNKNOWN_1, cc=KLAUS))
plain("bounce-exim-no-header", "bounce", "Exim bounce without X-Failed-Recipients or Auto-Submitted, two failed",
      frm="Mail Delivery System <Mailer-Daemon@mail.example.org>", subject="Mail delivery failed: returning message to sender",
      failed=[KLAUS, UNKNOWN_3],
      body="This message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of its\n"
           f"recipients. This is a permanent error. The following address(es) failed:\n\n  {KLAUS}\n    Unrouteable address\n  {UNKNOWN_3}\n"
           "    retry timeout exceeded\n\n------ This is a copy of the message, including all the headers. ------\n\n" + returned(to=f"{KLAUS}, {UNKNOWN_3}"))
plain("bounce-exim-delay", "bounce-delay", "Exim delay warning: automatic, nothing failed yet",
      frm="Mail Delivery System <Mailer-Daemon@mail.example.org>", subject="Warning: message 1kqP2c-0004Xy-9Q delayed 24 hours",
      body="This message was created automatically by mail delivery software.\nA message that you sent has not yet been delivered to one or more of its\n"
           f"recipients after more than 24 hours on the queue on mail.example.org.\n\nThe address to which the message has not yet been delivered is:\n\n  {UNKNOWN_1}\n"
           "    Delay reason: SMTP error from remote mail server after RCPT TO: 451 greylisted\n\nNo action is required on your part.\n")
plain("bounce-sendmail", "bounce", "Sendmail bounce (permanent fatal errors), text/plain + message/rfc822",
      frm="Mail Delivery Subsystem <MAILER-DAEMON@mail.example.org>", subject="Returned mail: see transcript for details",
      failed=[UNKNOWN_2], attach_original=returned(to=UNKNOWN_2),
      body="The original message was received at Tue, 1 Dec 2026 10:14:58 +0100\nfrom mx.beispiel-firma.de [192.0.2.1]\n\n"
           f"   ----- The following addresses had permanent fatal errors -----\n<{UNKNOWN_2}>\n    (reason: 550 5.1.1 <{UNKNOWN_2}>... User unknown)\n\n"
           f"   ----- Transcript of session follows -----\n... while talking to mx.kunde-nord.example.:\n>>> DATA\n<<< 550 5.1.1 <{UNKNOWN_2}>... User unknown\n550 5.1.1 <{UNKNOWN_2}>... User unknown\n")
plain("bounce-sendmail-delay", "bounce-delay", "Sendmail four-hour warning: automatic, nothing failed",
      frm="Mail Delivery Subsystem <MAILER-DAEMON@mail.example.org>", subject="Warning: could not send message for past 4 hours",
      body="    **********************************************\n    **      THIS IS A WARNING MESSAGE ONLY      **\n    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n"
           f"    **********************************************\n\nThe original message was received at Tue, 1 Dec 2026\n\n   ----- Transcript of session follows -----\n<{UNKNOWN_3}>... Deferred: Connection timed out\n")
plain("bounce-exchange-2003", "bounce", "old Exchange NDR: The following recipient(s) could not be reached",
      frm="System Administrator <postmaster@example.com>", subject="Undeliverable: Angebot 4711", failed=[KLAUS],
      attach_original=returned(),
      body="Your message did not reach some or all of the intended recipients.\n\n      Subject:\tAngebot 4711\n      Sent:\t30.11.2026 16:02\n\n"
           f"The following recipient(s) could not be reached:\n\n      '{KLAUS}' on 01.12.2026 10:15\n            550 5.1.1 User unknown\n")
plain("bounce-exchange-en", "bounce", "Exchange 2010 NDR (Delivery has failed to these recipients or groups), two recipients",
      frm="Microsoft Exchange <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.com>", subject="Undeliverable: Angebot 4711",
      failed=[UNKNOWN_1, KLAUS], attach_original=returned(to=f"{UNKNOWN_1}, {KLAUS}"),
      body=f"Delivery has failed to these recipients or groups:\n\n{UNKNOWN_1} ({UNKNOWN_1})\nThe e-mail address you entered couldn't be found. "
           "Please check the recipient's e-mail address and try to resend the message. If the problem continues, please contact your helpdesk.\n\n"
           f"Klaus Müller ({KLAUS})<mailto:{KLAUS}>\nThe recipient's mailbox is full and can't accept messages now.\n\n"
           "Diagnostic information for administrators:\n\nGenerating server: EX01.example.com\n\n"
           f"{UNKNOWN_1}\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\nOriginal message headers:\n\nTo: {UNKNOWN_1}\nCc: postmaster@example.com\n")
plain("bounce-exchange-de", "bounce", "Exchange NDR in German", frm="Microsoft Exchange <postmaster@example.com>",
      subject="Unzustellbar: Angebot 4711", failed=[UNKNOWN_3],
      body=f"Die Zustellung an folgende Empfänger oder Gruppen ist fehlgeschlagen:\n\n{UNKNOWN_3}\nDie eingegebene E-Mail-Adresse wurde nicht gefunden. "
           "Wenden Sie sich bitte an den Helpdesk, wenn das Problem weiterhin besteht: helpdesk@example.com\n\n"
           "Diagnoseinformationen für Administratoren:\n\nGenerierender Server: EX01.example.com\n")
plain("bounce-exchange-fr", "bounce", "Exchange NDR in French, HTML only", frm="postmaster@example.fr",
      subject="Non remis : Angebot 4711", failed=[UNKNOWN_1], content_type="text/html; charset=utf-8",
      body=f"<html><body><p>La remise aux destinataires ou groupes suivants a échoué :</p><p><a href=\"mailto:{UNKNOWN_1}\">{UNKNOWN_1}</a><br>"
           "L'adresse de messagerie que vous avez entrée est introuvable.</p></body></html>")
plain("bounce-o365-text", "bounce", "Office 365 NDR text (Your message to … couldn't be delivered), no DSN part",
      frm="Microsoft Outlook <postmaster@outlook.com>", subject="Undeliverable: Angebot 4711", failed=[KLAUS],
      headers="X-MS-Exchange-Message-Is-Ndr:\n",
      body=f"Your message to {KLAUS} couldn't be delivered.\n\nklaus.mueller wasn't found at mueller-maschinenbau.de.\n\n"
           "Anna Schmidt\tOffice 365\tklaus.mueller\nAction Required\t\t\tRecipient\n\nUnknown To address\n")
plain("bounce-gmail-old", "bounce", "older Gmail bounce text", frm="Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
      subject="Delivery Status Notification (Failure)", failed=[UNKNOWN_2],
      body=f"Delivery to the following recipient failed permanently:\n\n     {UNKNOWN_2}\n\nTechnical details of permanent failure:\n"
           "Google tried to deliver your message, but it was rejected by the server for the recipient domain kunde-nord.example.\n\n"
           f"The error that the other server returned was:\n550 5.1.1 <{UNKNOWN_2}>: Recipient address rejected: User unknown\n\n----- Original message -----\n\n"
           + returned(to=UNKNOWN_2, cc=KLAUS))
plain("bounce-gmail-new", "bounce", "Gmail bounce text, HTML and text, no DSN part",
      frm="Mail Delivery Subsystem <mailer-daemon@googlemail.com>", subject="Delivery Status Notification (Failure)",
      failed=[UNKNOWN_3],
      body=f"** Address not found **\n\nYour message wasn't delivered to {UNKNOWN_3} because the address couldn't be found, or is unable to receive mail.\n\n"
           f"The response from the remote server was:\n550 5.1.1 <{UNKNOWN_3}>: user unknown\n")
plain("bounce-yahoo", "bounce", "Yahoo bounce", frm="MAILER-DAEMON@yahoo.com", subject="Failure Notice", failed=[UNKNOWN_1],
      body="Sorry, we were unable to deliver your message to the following address.\n\n"
           f"<{UNKNOWN_1}>:\nRemote host said: 550 5.1.1 <{UNKNOWN_1}>: Recipient address rejected: User unknown [RCPT_TO]\n\n"
           "--- Below this line is a copy of the message.\n\n" + returned(to=UNKNOWN_1, cc=KLAUS))
plain("bounce-ses-text", "bounce", "Amazon SES bounce as text", frm="MAILER-DAEMON@amazonses.com",
      subject="Delivery Status Notification (Failure)", failed=[UNKNOWN_2, UNKNOWN_3],
      body=f"An error occurred while trying to deliver the mail to the following recipients:\n{UNKNOWN_2}\n{UNKNOWN_3}\n")
plain("bounce-courier-text", "bounce", "Courier bounce as text", frm='"Courier mail server at mx.example.org" <postmaster@mx.example.org>',
      subject="NOTICE: mail delivery status.", failed=[UNKNOWN_1],
      body="This is a delivery status notification from mx.example.org,\nrunning the Courier mail server, version 1.1.\n\n"
           "---------------------------------------------------------------------------\n\n                           UNDELIVERABLE MAIL\n\n"
           f"Your message to the following recipients cannot be delivered:\n\n<{UNKNOWN_1}>:\n    mx.example.org [192.0.2.7]:\n>>> RCPT TO:<{UNKNOWN_1}>\n<<< 550 5.1.1 No such user\n")
plain("bounce-opensmtpd", "bounce", "OpenSMTPD bounce", frm="Mailer Daemon <MAILER-DAEMON@mail.example.net>",
      subject="Delivery status notification: error", failed=[KLAUS],
      body="Hi!\n\nThis is the MAILER-DAEMON, please DO NOT REPLY to this email.\n\nAn error has occurred while attempting to deliver a message for\n"
           f"the following list of recipients:\n\n{KLAUS}: 550 5.1.1 <{KLAUS}>: Recipient address rejected: User unknown\n\n"
           "Below is a copy of the original message:\n\n" + returned(cc=UNKNOWN_1))
plain("bounce-domino", "bounce", "Lotus Domino delivery failure report", frm="Mail Router <Postmaster@example.com>",
      subject=f"DELIVERY FAILURE: User Jan Vos ({UNKNOWN_3}) not listed in Domino Directory", failed=[UNKNOWN_3],
      attach_original=returned(to=UNKNOWN_3),
      body=f"Your message\n\n  Subject: Angebot 4711\n\nwas not delivered to:\n\n  {UNKNOWN_3}\n\nbecause:\n\n  User Jan Vos ({UNKNOWN_3}) not listed in Domino Directory\n")
plain("bounce-unknown-mta-headers", "bounce", "an unfamiliar MTA's bounce: the attached original's only recipient, named in the notice",
      frm="postmaster@example.net", subject="Mail System Error - Returned Mail", failed=[UNKNOWN_2],
      attach_original=returned(to=UNKNOWN_2),
      body=f"The mail server could not deliver your message.\nThe recipient {UNKNOWN_2} does not have a mailbox here.\n")
plain("bounce-quoted-helpdesk", "bounce", "a bounce that mentions a helpdesk address: not a failed recipient",
      frm="postmaster@example.net", subject="Undeliverable mail", failed=[],
      attach_original=returned(to=f"{UNKNOWN_1}, {UNKNOWN_2}"),
      body="Your message could not be delivered to all recipients.\nIf you need help, write to helpdesk@example.net or "
           f"call us. Our records for {UNKNOWN_1} show nothing.\n")
plain("bounce-smtp-null-plain", "bounce", "a plain bounce over SMTP with MAIL FROM:<> and a subject no list knows",
      frm="mail@relay.example.com", subject="Benachrichtigung", mail_from="<>", source="smtp",
      body="Ihre Nachricht konnte nicht zugestellt werden.\n")
plain("bounce-post_master", "bounce", "a notice from post_master@", frm="post_master@example.org", subject="Ihre Nachricht",
      body="Ihre Nachricht wurde vom Virenscanner abgewiesen.\n")
plain("bounce-postmaster-spam", "bounce", "a rejection from postmaster@", frm="postmaster@kunde-nord.example",
      subject="Message rejected", body="Your message was classified as spam and has been rejected.\n")

plain("bounce-exchange-2007", "bounce", "Exchange 2007 NDR: distribution lists, the entry as Name<mailto:…>",
      frm="postmaster@example.com", subject="Undeliverable: Angebot 4711", failed=[UNKNOWN_3],
      body=f"Delivery has failed to these recipients or distribution lists:\n\nJan Vos<mailto:{UNKNOWN_3}>\n"
           "The recipient's e-mail address was not found in the recipient's e-mail system. Microsoft Exchange will not try to redeliver this message for you.\n\n"
           "________________________________\nSent by Microsoft Exchange Server 2007\n\nOriginal message headers:\n\n" + original(to=UNKNOWN_3, cc=KLAUS))
plain("bounce-dma-bare-daemon", "bounce", "a small MTA's bounce: From: MAILER-DAEMON <> and the recipient in a sentence",
      frm="MAILER-DAEMON <>", subject="Mail delivery failed", failed=[UNKNOWN_2],
      body=f"This is the mail agent at relay.example.net.\n\nThere was an error delivering your mail to <{UNKNOWN_2}>.\n\n"
           "mx.kunde-nord.example [192.0.2.8] did not like our RCPT TO:\n550 5.1.1 no such user\n\nMessage headers follow.\n\n" + original(to=UNKNOWN_2))
_EMPTY_DSN = (f"Return-Path: <>\nFrom: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nTo: {STAFF}\n"
              f"Subject: Delivery Status Notification (Failure)\nDate: {DATE}\nMessage-ID: <empty-dsn@mx.google.com>\n"
              f"Auto-Submitted: auto-replied\nX-Failed-Recipients: {KLAUS}\nMIME-Version: 1.0\n"
              'Content-Type: multipart/report; boundary="R"; report-type=delivery-status\n\n'
              "--R\nContent-Type: text/plain; charset=UTF-8\n\n** Message not delivered **\n\nThe response was:\n\nUnspecified Error\n"
              f"--R\nContent-Type: message/delivery-status\n\n\n--R\nContent-Type: message/rfc822\n\n{returned()}\n--R--\n")
case("dsn-empty-status-x-failed", "dsn", "Gmail report with an empty delivery-status part: X-Failed-Recipients names the recipient",
     _EMPTY_DSN, failed=[KLAUS])

plain("bounce-subject-label-only", "bounce", "a gateway's bounce recognised by its subject label alone (no system sender)",
      frm="mail-gw@example.com", subject="Unzustellbar: Angebot 4711", failed=[UNKNOWN_3],
      body=f"Die Zustellung an folgende Empfänger oder Gruppen ist fehlgeschlagen:\n\n{UNKNOWN_3}\nDas Postfach existiert nicht.\n")
plain("bounce-weak-subject-with-original", "bounce", "'Delivery failure' counts as a bounce because the returned original is attached",
      frm="gateway@example.com", subject="Delivery failure", failed=[UNKNOWN_1], attach_original=returned(to=UNKNOWN_1),
      body=f"The message could not be delivered to {UNKNOWN_1}.\nThe remote server said: 550 no such mailbox.\n")

plain("bounce-exim-sent-by", "bounce", "Exim bounce to a forwarder: 'A message sent by <x>', the list wrapped over two lines",
      frm="Mail Delivery System <Mailer-Daemon@fwd.example.org>", subject="Mail failure - rejected by local scanning code",
      failed=[UNKNOWN_1, UNKNOWN_2],
      body="This message was created automatically by mail delivery software.\n\nA message sent by\n\n  <anna.schmidt@beispiel-firma.de>\n\n"
           "could not be delivered to one or more of its recipients. The following\naddress(es) failed:\n\n"
           f"  {UNKNOWN_1}\n    SMTP error from remote mail server after RCPT TO:<{UNKNOWN_1}>:\n    550 5.1.1 unknown\n"
           f"  {UNKNOWN_2}: forced freeze\n\n------ This is a copy of the message's headers. ------\n\n" + original(to=f"{UNKNOWN_1}, {UNKNOWN_2}"))
plain("bounce-postfix-renamed", "bounce", "a Postfix whose program name was changed by its operator",
      frm="Mail Delivery System <MAILER-DAEMON@mx.example.net>", subject="Undelivered Mail Returned to Sender", failed=[KLAUS],
      attach_original=returned(),
      body="This is the Example-Mail Postfix program at host mx.example.net.\n\nI'm sorry to have to inform you that your message could not\n"
           f"be delivered to one or more recipients.\n\n\t\t\tThe Example-Mail Postfix program\n\n<{KLAUS}>: host\n    mx.mueller-maschinenbau.de[203.0.113.20] said: 550 User unknown\n")
plain("bounce-inline-dsn-fields", "bounce", "a relay's plain-text bounce with the delivery-status fields written into the text",
      frm="mail-relay@example.com", subject="Returned mail: User unknown", failed=[UNKNOWN_3, KLAUS],
      body="The message below could not be delivered.\n\nReporting-MTA: dns; relay.example.com\n\n"
           f"Final-Recipient: rfc822; {UNKNOWN_3}\nAction: failed\nStatus: 5.1.1\n\n"
           f"Final-Recipient: rfc822; {KLAUS}\nAction: failed\nStatus: 5.2.2\nDiagnostic-Code: smtp; 552 mailbox full\n\n"
           "--- Below this line is a copy of the message.\n\n" + returned(to=f"{UNKNOWN_3}, {KLAUS}"))
plain("bounce-angle-colon-unknown-intro", "bounce", "an unfamiliar notice listing '<addr>: reason' lines",
      frm="Mail Delivery System <MAILER-DAEMON@gw.example.org>", subject="Undelivered Mail Returned to Sender", failed=[UNKNOWN_2],
      body=f"Message from the mail gateway at gw.example.org.\n\n<{UNKNOWN_2}>: 550 mailbox unavailable\n")
plain("bounce-postfix-report-unavailable", "bounce", "Postfix lost its log: the returned original's only recipient",
      frm="MAILER-DAEMON@mx.example.net (Mail Delivery System)", subject="Undelivered Mail Returned to Sender", failed=[UNKNOWN_1],
      attach_original=returned(to=f"Martin Weber <{UNKNOWN_1}>"),
      body="This is the mail system at host mx.example.net.\n\nI'm sorry to have to inform you that your message could not\n"
           "be delivered to one or more recipients. It's attached below.\n\n                   The mail system\n\n\t--- Delivery report unavailable ---\n")
plain("bounce-lotus-notes", "bounce", "Lotus Notes failure report", frm="Mail Router <postmaster@notes.example.com>",
      subject="Undeliverable Message", failed=[UNKNOWN_3],
      body=f"------- Failure Reasons  --------\n\nUser not listed in public Name & Address Book\n{UNKNOWN_3}\n\n\n------- Returned Message --------\n" + returned(to=UNKNOWN_3))

_SES_BOUNCE = json.dumps({
    "notificationType": "Bounce",
    "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "timestamp": "2026-12-01T09:15:00.000Z",
               "feedbackId": "0100018c-example", "reportingMTA": "dsn; a27-19.smtp-out.eu-central-1.amazonses.com",
               "bouncedRecipients": [{"emailAddress": KLAUS, "action": "failed", "status": "5.1.1",
                                      "diagnosticCode": "smtp; 550 5.1.1 user unknown"},
                                     {"emailAddress": f"Jan Vos <{UNKNOWN_3}>", "action": "failed", "status": "5.1.1"}]},
    "mail": {"timestamp": "2026-12-01T09:14:58.000Z", "source": STAFF, "destination": [KLAUS, UNKNOWN_3]}})
plain("bounce-ses-sns-json", "bounce", "an Amazon SES bounce notification mailed by SNS as JSON",
      frm="AWS Notifications <no-reply@sns.amazonaws.com>", subject="AWS Notification Message", failed=[KLAUS, UNKNOWN_3],
      body=json.dumps({"Type": "Notification", "MessageId": "5e0b-example", "TopicArn": "arn:aws:sns:eu-central-1:123456789012:bounces",
                       "Message": _SES_BOUNCE, "Timestamp": "2026-12-01T09:15:01.000Z"}, indent=2)
           + "\n\n--\nIf you wish to stop receiving notifications from this topic, please click or visit the link below to unsubscribe:\n")
plain("report-ses-sns-complaint", "arf", "an Amazon SES complaint notification (JSON): automatic, nothing failed",
      frm="AWS Notifications <no-reply@sns.amazonaws.com>", subject="AWS Notification Message",
      body=json.dumps({"notificationType": "Complaint", "complaint": {"complainedRecipients": [{"emailAddress": UNKNOWN_1}],
                       "complaintFeedbackType": "abuse"}, "mail": {"source": STAFF, "destination": [UNKNOWN_1]}}))

# --- ARF feedback reports (RFC 5965) and read receipts ---------------------------------------------------

_ARF_FIELDS = ("Feedback-Type: abuse\nUser-Agent: SomeGenerator/1.0\nVersion: 1\nOriginal-Mail-From: <anna.schmidt@beispiel-firma.de>\n"
               f"Original-Rcpt-To: <{UNKNOWN_1}>\nArrival-Date: {DATE}\nReporting-MTA: dns; mail.example.net\nSource-IP: 192.0.2.1\n")
report("arf-report", "ARF abuse report as multipart/report", frm="Abuse Desk <feedback@mail.example.net>",
       subject="FW: Angebot 4711", failed=[], text="This is an email abuse report for an email message received from IP 192.0.2.1.\n",
       report_type="feedback-report", status_type="message/feedback-report", status=_ARF_FIELDS, kind="arf")
raw_arf_mixed = (f"From: Feedback Loop <fbl@isp.example.com>\nTo: abuse@beispiel-firma.de\nSubject: Complaint about message from 192.0.2.1\n"
                 f"Date: {DATE}\nMessage-ID: <arf-mixed@isp.example.com>\nMIME-Version: 1.0\n"
                 'Content-Type: multipart/mixed; boundary="ARF"\n\n--ARF\nContent-Type: text/plain\n\nA user marked this message as spam.\n'
                 f"--ARF\nContent-Type: message/feedback-report\n\n{_ARF_FIELDS}\n--ARF\nContent-Type: message/rfc822\n\n{returned(to=UNKNOWN_1)}\n--ARF--\n")
case("arf-multipart-mixed", "arf", "ARF feedback report sent as multipart/mixed", raw_arf_mixed)
raw_jmrp = (f"From: complaints@mail.example.net\nTo: abuse@beispiel-firma.de\nSubject: complaint about message from 192.0.2.1\n"
            f"Date: {DATE}\nMessage-ID: <jmrp@mail.example.net>\nMIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="J"\n\n'
            f"--J\nContent-Type: message/rfc822\nContent-Disposition: inline\n\n{returned(to=UNKNOWN_1)}\n--J--\n")
case("arf-complaint-only-original", "arf", "a complaint (feedback loop) holding only the reported message", raw_jmrp)
plain("arf-text-says-so", "arf", "a feedback report that says what it is, with only the reported mail attached",
      frm="abuse@isp.example.com", subject="Spam", attach_original=returned(to=UNKNOWN_1),
      body="This is an email abuse report for an email message received from IP 192.0.2.1 on Tue, 1 Dec 2026.\n")
plain("arf-aol-style", "arf", "an AOL-style feedback loop notice: its own subject, the reported mail attached",
      frm="scomp@aol.example.net", subject="Client TOS Notification", attach_original=returned(to=UNKNOWN_2),
      body="This is a notification of a spam complaint.\n")
raw_arf_text = raw_arf_mixed.replace("Content-Type: message/feedback-report\n", "Content-Type: text/plain\n").replace(
    "<arf-mixed@", "<arf-text@")
case("arf-mixed-text-fields", "arf", "feedback report whose fields part is labelled text/plain", raw_arf_text)
report("mdn-read-receipt", "read receipt (disposition-notification)", frm=f"Klaus Müller <{KLAUS}>",
       subject="Gelesen: Angebot 4711", failed=[], text="Ihre Nachricht wurde gelesen.\n", report_type="disposition-notification",
       status_type="message/disposition-notification", orig=original(), orig_type="text/rfc822-headers",
       status=f"Reporting-UA: Outlook\nFinal-Recipient: rfc822;{KLAUS}\nOriginal-Message-ID: <angebot@beispiel-firma.de>\n"
              "Disposition: manual-action/MDN-sent-manually; displayed\n", kind="mdn")

# --- list managers -------------------------------------------------------------------------------------------

plain("list-mailman-moderation", "list", "Mailman: message held for moderation", frm="kunden-info-bounces@lists.example.org",
      subject="Your message to Kunden-Info awaits moderator approval", headers="X-List-Administrivia: yes\n",
      body="Your mail to 'Kunden-Info' with the subject\n\n    Angebot 4711\n\nIs being held until the list moderator can review it for approval.\n")
plain("list-mailman-owner", "list", "Mailman notice from the list owner address", frm="kunden-info-owner@lists.example.org",
      subject="Kunden-Info post from anna.schmidt@beispiel-firma.de requires approval",
      body="As list administrator, your authorization is requested for the following mailing list posting.\n")
plain("list-sympa", "list", "Sympa rejection", frm="SYMPA <sympa@lists.example.org>", subject="Message distribution: Authorization denied",
      body="Your message for list kunden@lists.example.org has been rejected.\nYou are not allowed to send to this list.\n")
plain("list-listserv", "list", "LISTSERV rejection", frm='"L-Soft list server at LISTS.EXAMPLE.EDU (16.0)" <LISTSERV@LISTS.EXAMPLE.EDU>',
      subject="Rejected posting to KUNDEN-L@LISTS.EXAMPLE.EDU",
      body="You are not authorized to send mail to the KUNDEN-L list from your anna.schmidt@beispiel-firma.de account.\n")
plain("list-majordomo", "list", "Majordomo results", frm="Majordomo@example.org", subject="Majordomo results: Angebot 4711",
      body=">>>> Angebot\n**** Command 'angebot' not recognized.\n")
plain("list-ezmlm", "list", "ezmlm response with Mailing-List header", frm="kunden-help@example.net",
      subject="ezmlm response", headers="Mailing-List: contact kunden-help@example.net; run by ezmlm\n",
      body="Hi! This is the ezmlm program. I'm managing the\nkunden@example.net mailing list.\n\nI'm sorry, but your message was rejected.\n")
plain("list-request", "list", "a list's -request robot", frm="kunden-request@lists.example.org", subject="Welcome",
      body="Your request has been processed.\n")

# --- auto-replies without Auto-Submitted -----------------------------------------------------------------------

OOF = {
    "de": ("Automatische Antwort: Angebot 4711", "Vielen Dank für Ihre Nachricht. Ich bin bis einschließlich 11.12. nicht im Büro "
           "und habe keinen Zugriff auf meine E-Mails. In dringenden Fällen wenden Sie sich bitte an zentrale@example.org."),
    "en": ("Automatic reply: Angebot 4711", "Thank you for your email. I am out of the office until 11 December with limited access "
           "to email. For urgent matters please contact office@example.org."),
    "fr": ("Réponse automatique : Angebot 4711", "Bonjour, je suis absente du bureau jusqu'au 11 décembre. Pour toute urgence, "
           "merci de contacter accueil@example.fr."),
    "es": ("Respuesta automática: Angebot 4711", "Gracias por su mensaje. Estoy fuera de la oficina hasta el 11 de diciembre."),
    "it": ("Risposta automatica: Angebot 4711", "Grazie per il messaggio. Sono fuori ufficio fino all'11 dicembre."),
    "nl": ("Automatisch antwoord: Angebot 4711", "Dank voor uw bericht. Ik ben tot en met 11 december afwezig."),
}
for lang, (subject, body) in OOF.items():
    plain(f"ooo-exchange-{lang}", "auto-reply", f"Exchange out-of-office in {lang}, only X-Auto-Response-Suppress",
          frm=f"Kunde {lang.upper()} <kontakt.{lang}@example.org>", subject=subject, body=body,
          headers="X-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: kontakt@example.org\nThread-Topic: Angebot 4711\n")
OLD_LABELS = {"de": "Abwesend: Angebot 4711", "en": "Out of Office: Angebot 4711", "fr": "Absence du bureau : Angebot 4711",
              "es": "Fuera de la oficina: Angebot 4711", "it": "Fuori sede: Angebot 4711", "nl": "Niet aanwezig: Angebot 4711"}
for lang, subject in OLD_LABELS.items():
    plain(f"ooo-label-{lang}", "auto-reply", f"older Outlook out-of-office label in {lang}, no headers at all",
          frm=f"kontakt.{lang}@example.net", subject=subject, body=OOF[lang][1])
plain("ooo-apple-vacation", "auto-reply", "Apple Mail vacation rule: Re: subject, no headers, short away text",
      frm="Petra Lange <petra.lange@example.com>", subject="Re: Angebot 4711",
      headers="In-Reply-To: <angebot-4711@beispiel-firma.de>\nX-Mailer: Apple Mail (2.3774)\n",
      body="Ich bin vom 1. bis 11. Dezember im Urlaub und lese meine E-Mails nicht.\nPetra Lange")
plain("ooo-gmail-vacation", "auto-reply", "Gmail vacation responder with the user's own subject",
      frm="Tom Berger <tom.berger.example@gmail.com>", subject="Urlaub bis 11.12.",
      headers="In-Reply-To: <angebot-4711@beispiel-firma.de>\nReferences: <angebot-4711@beispiel-firma.de>\n",
      body="Hallo, ich bin bis zum 11.12. im Urlaub und ab dem 14.12. wieder erreichbar. Viele Grüße, Tom")
plain("ooo-gmail-en", "auto-reply", "Gmail vacation in English, subject set by the user",
      frm="Sam Porter <sam.porter.example@gmail.com>", subject="Away",
      headers="In-Reply-To: <angebot-4711@beispiel-firma.de>\n",
      body="Hi, I'm currently on vacation until December 11th and will reply when I'm back.")
plain("ooo-apple-x-apple-action", "auto-reply", "iCloud vacation reply: X-Apple-Action: vacation, the user's own subject",
      frm="Mara Ilic <mara.ilic@example.com>", subject="Bin unterwegs", headers="X-Apple-Action: vacation\n",
      body="Danke für die Nachricht, ich melde mich nach dem 11.12.")
plain("ooo-notes-auto", "auto-reply", "Lotus Notes auto-reply: AUTO: in the subject",
      frm="Rolf Berg/Example@example.com", subject="AUTO: Rolf Berg ist außer Haus (Rückkehr am 11.12.2026)",
      body="Ich bin bis 11.12.2026 abwesend. Ihre Nachricht wird nicht weitergeleitet.")
plain("ooo-auto-re", "auto-reply", "'Auto: Re: …' in front of the subject, no headers",
      frm="Nina Graf <nina.graf@example.com>", subject="Auto: Re: Angebot 4711",
      body="Danke! Ich bin bis Montag nicht erreichbar.")
plain("ooo-x-autoreply", "auto-reply", "X-Autoreply: yes", frm="info@hotel-example.com", subject="Ihre Anfrage",
      headers="X-Autoreply: yes\n", body="Danke für Ihre Anfrage, wir melden uns.")
plain("ooo-x-autorespond", "auto-reply", "X-Autorespond header", frm="office@example.com", subject="We received your mail",
      headers="X-Autorespond: Thanks\n", body="We received your message and will reply within two days.")
plain("ooo-precedence", "auto-reply", "Precedence: auto_reply", frm="vertrieb@example.org", subject="Eingangsbestätigung",
      headers="Precedence: auto_reply\n", body="Ihre Nachricht ist eingegangen.")
plain("ooo-precedence-junk", "auto-reply", "Precedence: junk", frm="service@example.org", subject="Ticket received",
      headers="Precedence: junk\n", body="Your ticket has been received.")
plain("ooo-suppress-and-away", "auto-reply", "X-Auto-Response-Suppress with an away text, no label in the subject",
      frm="lisa.kern@example.org", subject="Urlaub", headers="X-Auto-Response-Suppress: All\n",
      body="Ich bin derzeit im Urlaub und ab dem 14.12. wieder erreichbar.")
plain("ooo-says-automatic", "auto-reply", "says it is an automatic reply, nothing else", frm="kontakt@example.org",
      subject="Ihre E-Mail", body="Dies ist eine automatische Antwort. Ihre Nachricht wird schnellstmöglich bearbeitet.")
plain("ooo-imap-return-path-null", "auto-reply", "an auto-reply fetched over IMAP, Return-Path: <>, nothing else",
      frm="h.koenig@example.org", subject="Ihre Nachricht", source="imap",
      headers="", body="Vielen Dank, wir melden uns bald.")
plain("ooo-smtp-null-sender", "auto-reply", "an auto-reply over SMTP with MAIL FROM:<> and nothing else",
      frm="h.koenig@example.org", subject="Ihre Nachricht", source="smtp", mail_from="<>",
      body="Vielen Dank, wir melden uns bald.")
plain("ooo-mailer-daemon-sender", "auto-reply", "a notice from mailer-daemon@ with a harmless subject",
      frm="mailer-daemon@example.org", subject="Information", body="Ihr Postfach ist fast voll.")

# --- human mail that looks a bit like robots: must stay ordinary (and create its lead) ------------------------

plain("human-forwarded-bounce", "human", "a customer forwards a bounce and asks why: not automatic",
      frm="Vera Holm <vera.holm@example.com>", subject="Fwd: Undelivered Mail Returned to Sender", automatic=False,
      body="Hallo, ich bekomme diese Meldung, wenn ich Ihnen schreibe. Können Sie helfen?\n\n---------- Forwarded message ---------\n"
           "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\nSubject: Undelivered Mail Returned to Sender\n\n"
           "<info@beispiel-firma.de>: host said: 550 5.1.1 User unknown\n")
plain("human-away-next-week", "human", "a new customer mentions being away next week: not automatic",
      frm="Olaf Brandt <olaf.brandt@example.net>", subject="Anfrage Wartungsvertrag", automatic=False,
      body="Guten Tag,\nwir interessieren uns für einen Wartungsvertrag für unsere Anlage. Ich bin ab Montag im Urlaub, "
           "bitte rufen Sie meinen Kollegen an.\nMit freundlichen Grüßen\nOlaf Brandt")
plain("human-outlook-suppress", "human", "ordinary Outlook mail carrying X-Auto-Response-Suppress: not automatic",
      frm="Greta Sommer <greta.sommer@example.org>", subject="Preisanfrage", automatic=False,
      headers="X-Auto-Response-Suppress: All\nThread-Topic: Preisanfrage\n",
      body="Hallo, bitte senden Sie mir ein Angebot über 20 Stück.\nGreta Sommer")
plain("human-reply-on-leave", "human", "a reply that quotes our mail and mentions leave: not automatic",
      frm="Ines Roth <ines.roth@example.com>", subject="AW: Angebot 4711", automatic=False,
      headers="In-Reply-To: <angebot-4711@beispiel-firma.de>\n",
      body="Danke, ich bin ab morgen im Urlaub, mein Kollege meldet sich.\n\nAm 30.11.2026 schrieb Anna Schmidt:\n> anbei unser Angebot\n")

plain("human-car-subject", "human", "a customer writes about a car (Auto): not Lotus Notes' AUTO:",
      frm="Kai Vogel <kai.vogel@example.net>", subject="Auto: Reparatur nächste Woche möglich?", automatic=False,
      body="Hallo, können Sie unser Firmenauto nächste Woche reparieren?\nKai Vogel")
plain("human-delivery-failed-goods", "human", "a customer's parcel did not arrive: 'Delivery failed' is not a bounce",
      frm="Lea Frank <lea.frank@example.org>", subject="Delivery failed - order 4711", automatic=False,
      body="Hello, the courier says delivery failed twice. Can you send the order again?\nLea Frank")
plain("human-parcel-undeliverable-de", "human", "'Unzustellbares Paket' is a customer's parcel, not a bounce",
      frm="Jonas Hahn <jonas.hahn@example.com>", subject="Unzustellbares Paket", automatic=False,
      body="Guten Tag, Ihr Paket kam als unzustellbar zurück. Bitte prüfen Sie die Adresse.\nJonas Hahn")


def main() -> None:
    for old in HERE.glob("*.eml"):
        old.unlink()
    for old in HERE.glob("*.json"):
        old.unlink()
    for name, (raw, expected) in sorted(CASES.items()):
        (HERE / f"{name}.eml").write_bytes(raw)
        (HERE / f"{name}.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(CASES)} cases written to {HERE}")


if __name__ == "__main__":
    main()
