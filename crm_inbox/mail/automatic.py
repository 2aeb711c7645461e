"""Automatic mail (RFC 3834 and its de-facto relatives): out-of-office replies, bounces, reports, lists, bulk.

Such mail is recorded for known people only: it never creates a lead, never opens a ticket and is
never answered. Robots rarely say so in one standard way, so the signs are read in order of how much
they can be trusted: report structure and headers first, then system senders and the null sender, then
the subject labels auto-responders and MTAs use, and last the opening words of a short reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crm_inbox.mail.addresses import NULL_SENDER, normalise_email, parse_addresses
from crm_inbox.mail.bounces import (
    RecipientStatus,
    angle_colon_lines,
    bounce_shape,
    delivery_statuses,
    is_delay_notice,
    named_in,
    original_recipients,
    report_type,
    ses_notification,
    statuses_in_text,
)
from crm_inbox.mail.parse import Message, ParsedMail, has_header, header_str

_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply", "auto-reply", "autoreply"})
# Present (with any value but a "no") only on automatic mail. Not X-Auto-Response-Suppress: Outlook and
# mail gateways put it on ordinary mail too; it only backs up a subject below.
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponse", "X-Autoresponder", "X-AutoReply-From",
                 "X-Mail-Autoreply", "X-MS-Exchange-Message-Is-Ndr", "X-Failed-Recipients",
                 "X-List-Administrivia", "Mailing-List", "X-MLServer")
_NO = frozenset({"no", "false", "0", "none"})

# Local parts of MTAs and Exchange's system mailbox (MicrosoftExchange + 32 hex digits) …
_MTA_LOCALS = (r"mailer[-_.]?daemon|mail[-_.]?daemon|post[-_.]?master|mail[-_.]?delivery[-_.]?(sub)?system|"
               r"microsoftexchange[0-9a-f]{32}")
_MTA_SENDER = re.compile(rf"^({_MTA_LOCALS})$")
# … and of list managers and feedback loops, as the From of their notices. (Not in the envelope: bounces+…@ there is the
# VERP address of ordinary mail sent through a mailing service, web forms included.)
_SYSTEM_SENDER = re.compile(rf"^({_MTA_LOCALS}|listserv|majordomo|sympa|mailman|ezmlm|scomp|fbl|feedback-?loop|"
                            r"[^@]+-(owner|bounces?|request)(\+[^@]*)?|owner-[^@]+)$")
_SYSTEM_NAME = re.compile(r"^(mail delivery (sub)?system|mailer[- ]daemon|microsoft (exchange|outlook)|"
                          r"mail router|courier mail server|postmaster)\b", re.IGNORECASE)

_TAG = r"^\s*(?:\[[^\]]{1,30}\]\s*)?"  # "[EXTERNAL] Undeliverable: …"
# What MTAs put in a bounce's subject, anchored at its start (a customer's "Fwd: Undeliverable…" is a
# person asking). Labels end in a colon: "Unzustellbares Paket" is a customer's parcel, not a bounce.
_BOUNCE_SUBJECT = re.compile(
    _TAG + r"((undeliverable|undelivered|unzustellbar|nicht zustellbar|non remis|non distribuable|"
    r"non recapitabile|no se puede entregar|no entregado|onbestelbaar|niet bezorgd|returned mail|"
    r"delivery notification|delivery failure|mail delivery failed|message delivery failure)\s*:|"
    r"undelivered mail returned to sender|undeliverable (mail|message)\b|mail delivery fail|"
    r"delivery status notification|returned mail\b|failure notice|mail system error|"
    r"non-?delivery (report|notification)|nondeliverable|message not delivered|undelivered message|"
    r"(mail|message) could not be delivered|could not deliver (your )?message|warning: could not send message|"
    r"warning: message \S+ delayed|delayed mail|(uncaught )?bounce notification|mail delivery problem|"
    r"zustellung fehlgeschlagen|fehlgeschlagene zustellung|unzustellbare nachricht|"
    r"échec de (la )?(remise|distribution)|impossibile recapitare|recapito non riuscito|error en la entrega|"
    r"kan niet worden bezorgd|complaint about message from|client tos notification|\[bounce\])", re.IGNORECASE)
# Words a bounce or report may start with that a customer may also use about goods ("Delivery failed"):
# they count only with a returned original attached or a recognised bounce text.
_MAYBE_BOUNCE_SUBJECT = re.compile(
    _TAG + r"(delivery fail|delivery has failed|delivery report|delivery delayed|delivery problem|"
    r"delivery notification|undeliver|unzustellbar|abuse report|spam report|feedback report|spam complaint)",
    re.IGNORECASE)

# The labels Exchange/Outlook, Gmail, Apple and others put in front of an auto-reply, in six languages,
# followed by a colon, a dash, a bracket or nothing: "Abwesend: Angebot", "Out of Office".
_AUTO_REPLY_SUBJECT = re.compile(
    # Notes' "AUTO:"; "Auto:" in any case only before a reply prefix ("Auto: Reparatur" is about a car)
    _TAG + r"((?-i:AUTO)(?=\s*:)|auto(?=\s*:\s*(re|aw|antw|sv|r|rif|rv|ref)\s*:)|"
    r"automatic reply|auto[- ]?reply|auto[- ]?response|automatic response|"
    r"automated response|"
    r"out of (the )?office( auto ?reply)?|ooo|vacation (reply|response|notice)|away from (the )?office|"
    r"automatische antwort|automatische rückantwort|autom\. antwort|abwesend|abwesenheitsnotiz|"
    r"abwesenheitsnachricht|abwesenheitsmeldung|abwesenheitsbenachrichtigung|nicht im büro|außer haus|"
    r"ausser haus|im urlaub|réponse automatique|reponse automatique|absence du bureau|absent du bureau|"
    r"message d.absence|respuesta automática|respuesta automatica|fuera de la oficina|"
    r"fuera de oficina|mensaje de ausencia|risposta automatica|fuori sede|fuori ufficio|"
    r"fuori dall.ufficio|automatisch antwoord|automatisch bericht|niet aanwezig|afwezig|"
    r"buiten kantoor|afwezigheidsbericht)\s*(?:[:\-–(]|$)", re.IGNORECASE)

# Words of an auto-reply's first lines. "This is an automatic reply" alone is enough; the others only in
# a short, unquoted reply (a person who writes "I'm out of the office next week" quotes or says more).
# _AUTOMATIC_WORDS, _AWAY_WORDS and _QUOTED are matched against lower-cased text, not with IGNORECASE: with
# their non-ASCII words that flag made each search several times slower, and they run on every mail.
_AUTOMATIC_WORDS = re.compile(
    r"this is an? (automatic|automated|auto-generated) (reply|response|message|notification)|"
    r"dies ist eine automatische (antwort|nachricht|benachrichtigung)|automatisch generierte nachricht|"
    r"ceci est une réponse automatique|ceci est un message automatique|"
    r"esta es una respuesta automática|este es un mensaje automático|"
    r"questa è una risposta automatica|questo è un messaggio automatico|"
    r"dit is een automatisch (antwoord|bericht|gegenereerd bericht)")
# The opening of feedback reports that come without their machine-readable part (RFC 5965 and kin).
_REPORT_WORDS = re.compile(
    r"^\s*this is an? (?:.{1,40} )?(email abuse report|autogenerated email abuse complaint|"
    r"authentication[ -]failure report|spf/dkim authentication-failure report|email feedback report)",
    re.IGNORECASE)
_AWAY_WORDS = re.compile(
    r"\b(i am|i'm|i will be|i'll be) (currently |now |presently )?(out of (the )?office|away|on (annual )?"
    r"(leave|vacation|holiday)|out of town|travell?ing)|"
    r"\bich bin (bis|vom|ab|derzeit|zurzeit|zur zeit|momentan|leider|heute|nicht)\b.{0,80}"
    r"(nicht im büro|abwesend|im urlaub|nicht erreichbar|außer haus|ausser haus|nicht im hause)|"
    r"\bich bin (im urlaub|abwesend|nicht im büro)|"
    r"\bje (suis|serai) (actuellement )?(absente?|en congés?|en vacances|hors du bureau)|"
    r"\b(estoy|estaré|me encuentro) (actualmente )?(fuera de la oficina|de vacaciones|ausente)|"
    r"\b(sono|sarò) (attualmente )?(fuori (sede|ufficio)|assente|in ferie)|"
    r"\bik ben (momenteel |tot en met .{0,30})?(afwezig|met vakantie|niet aanwezig|buiten kantoor|op vakantie)")
_FEEDBACK_SUBJECT = re.compile(r"complaint|abuse|feedback|spam|tos notification", re.IGNORECASE)
_REPLY_SUBJECT = re.compile(r"^\s*(re|aw|antw|r|rif|rv|ref|sv|vs|odp)\s*:", re.IGNORECASE)
_QUOTED = re.compile(r"^>|-----\s*original|\b(wrote|schrieb|a écrit|escribió|ha scritto|schreef)\s*:",
                     re.MULTILINE)  # on lower-cased text (see _AUTOMATIC_WORDS)


@dataclass(frozen=True)
class Automatic:
    reason: str
    bounced: tuple[str, ...] = ()  # recipients a delivery report says failed (every one of them)
    # every per-recipient block of the report's delivery-status parts (failed, delayed, delivered …)
    statuses: tuple[RecipientStatus, ...] = ()


def is_null_sender(envelope_from: str | None) -> bool:
    return envelope_from == NULL_SENDER


def detect_automatic(mail: ParsedMail, envelope_from: str | None) -> Automatic | None:
    msg = mail.message
    reason = _why_automatic(mail, envelope_from)
    if reason is None:
        return None
    reason = reason.replace("\x00", "")  # header text in the reason: PostgreSQL cannot store NUL
    statuses = tuple(delivery_statuses(msg))
    if not statuses and report_type(msg) in (None, "delivery-status"):  # not for read receipts or ARF
        statuses = tuple(statuses_in_text(mail.text))
        if not statuses:
            return Automatic(reason, tuple(_failed_from_text(mail, reason)))
    return Automatic(reason, tuple(dict.fromkeys(s.recipient for s in statuses if s.failed)), statuses)


def _why_automatic(mail: ParsedMail, envelope_from: str | None) -> str | None:
    msg = mail.message
    kind = report_type(msg)
    if kind is not None:
        return f"delivery report ({kind})"
    auto_submitted = header_str(msg, "Auto-Submitted").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    for name in ("Precedence", "X-Precedence"):
        precedence = header_str(msg, name).strip().lower()
        if precedence in _PRECEDENCE:
            return f"{name}: {precedence}"
    for header in _AUTO_HEADERS:
        if has_header(msg, header) and header_str(msg, header).strip().lower() not in _NO:
            return f"{header} header"
    if "reply" in header_str(msg, "X-Autogenerated").lower():
        return "X-Autogenerated: reply"
    if "vacation" in header_str(msg, "X-Apple-Action").lower():  # iCloud's vacation reply
        return "X-Apple-Action: vacation"
    if has_header(msg, "List-Id"):
        return f"mailing list ({header_str(msg, 'List-Id').strip()[:100]})"
    if is_null_sender(envelope_from) or (envelope_from is None and _return_path_is_null(msg)):
        return "null envelope sender (a bounce or other automatic notice)"
    system = _system_sender(mail, envelope_from)
    if system:
        return f"sent by the mail system ({system})"
    subject = mail.subject
    if _BOUNCE_SUBJECT.search(subject) or (_MAYBE_BOUNCE_SUBJECT.search(subject) and (
            _has_returned_original(msg) or bounce_shape(mail.text) is not None)):
        return f"bounce (subject {subject[:60]!r})"
    if _AUTO_REPLY_SUBJECT.search(subject):
        return f"auto-reply (subject {subject[:60]!r})"
    return _auto_reply_words(mail)


def _has_returned_original(msg: Message) -> bool:
    return any(p.get_content_type() in ("message/rfc822", "text/rfc822-headers", "message/global",
                                         "text/global-headers") for p in msg.walk())


def _return_path_is_null(msg: Message) -> bool:
    """IMAP and files have no envelope: the delivering MTA recorded it as Return-Path (the topmost one)."""
    value = header_str(msg, "Return-Path").strip()
    return bool(value) and not value.strip("<> \t")


def _system_sender(mail: ParsedMail, envelope_from: str | None) -> str | None:
    if envelope_from and envelope_from != NULL_SENDER:
        for address in parse_addresses(envelope_from):
            if _MTA_SENDER.match(address.local_part):
                return address.email
    for address in [*mail.from_, *mail.sender]:
        local = address.local_part
        if local and _SYSTEM_SENDER.match(local):
            return address.email
        if address.name and _SYSTEM_NAME.match(address.name):
            return address.name
    raw_from = header_str(mail.message, "From").strip().strip('"')
    return raw_from[:60] if _SYSTEM_NAME.match(raw_from) else None  # "From: MAILER-DAEMON", no usable address


def _auto_reply_words(mail: ParsedMail) -> str | None:
    opening = mail.text[:600].replace("\r\n", "\n").replace("\r", "\n").lower()
    if _REPORT_WORDS.search(opening):
        return "feedback report (says so)"
    ses = ses_notification(mail.text[:100_000])
    if ses is not None:
        return f"Amazon SES notification ({ses[0][:40]})"
    if _QUOTED.search(mail.text[:3000].replace("\r", "\n").lower()):
        return None
    if _AUTOMATIC_WORDS.search(opening):
        return "auto-reply (says it is automatic)"
    headers = mail.message
    backed = (headers.get("X-Auto-Response-Suppress") is not None or _REPLY_SUBJECT.match(mail.subject)
              or bool(mail.in_reply_to))
    if backed and len(mail.text) < 2000 and _AWAY_WORDS.search(opening):
        return "auto-reply (an away notice in reply)"
    return None


def _failed_from_text(mail: ParsedMail, reason: str) -> list[str]:
    """Failed recipients of a bounce without a delivery-status part: the MTA's own wording, the
    X-Failed-Recipients header, and last the returned original's only recipient when the notice names it."""
    msg = mail.message
    header = header_str(msg, "X-Failed-Recipients")
    listed = [e for e in (normalise_email(v) for v in re.split(r"[,\s]+", header)) if e]
    if is_delay_notice(mail.subject, mail.text):
        return []
    shape = bounce_shape(mail.text)
    ses = ses_notification(mail.text[:100_000]) if reason.startswith("Amazon SES") else None
    found = list(dict.fromkeys([*listed, *(shape[1] if shape else []), *(ses[1] if ses else [])]))
    if found:
        return found
    looks_like_bounce = reason.startswith(("bounce", "sent by the mail system", "null envelope",
                                           "delivery report")) or bool(_BOUNCE_SUBJECT.search(mail.subject))
    if not looks_like_bounce or _FEEDBACK_SUBJECT.search(mail.subject):
        return []  # a complaint names the person who complained: that address did not fail
    found = angle_colon_lines(mail.text)
    if found:
        return found
    originals = original_recipients(msg)
    if len(originals) == 1:
        if re.search(r"delivery report unavailable", mail.text, re.IGNORECASE):  # Postfix lost its log
            return originals
        return named_in(originals, mail.text)
    return []
