"""What comes back from a campaign mail: replies, wishes to be unsubscribed, spam complaints and bounces, and the
opportunities staff make of the replies.

- A reply is recognised by our Message-ID in its In-Reply-To/References (``link_reply``): the recipient's row in
  the send ledger gets the reply and its time, the reply's timeline entry the campaign (``details["campaign_id"]``).
  Robots are no responders: out-of-office answers and other automatic mail are never counted as replies.
- A reply that asks to be taken off the list ("abmelden", "unsubscribe", …: ``asks_to_unsubscribe``) goes to
  triage with that suggestion (``details["unsubscribe_suggestion"]``, listed by ``unsubscribe_suggested``, the
  way ``sales.replies`` suggests deals). It never opts anybody out by itself: words in a mail are not a clear
  declaration (a customer may ask how to unsubscribe a colleague, or quote our own footer), so a person confirms
  (``confirm_unsubscribe``) or dismisses it. The automatic path is the signed one-click link.
- A spam complaint (an ARF feedback report, RFC 5965) about a campaign mail opts the person out at once: marking
  our mail as spam is an objection to it, and the mailbox providers stop delivering our mail when we keep writing.
- A delivery report of a campaign mail marks the recipient bounced (``mark_bounces`` already flags the address).

``file_mail`` is the pipeline's entry; the rest are the services the pages call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import HeaderParser
from typing import Any

from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.orm import Session

from crm_inbox import audit
from crm_inbox.campaigns import service
from crm_inbox.config import Settings
from crm_inbox.consent import ledger
from crm_inbox.db import affected
from crm_inbox.errors import Conflict, NotFound
from crm_inbox.mail.bounces import report_type
from crm_inbox.mail.parse import Message, ParsedMail, part_text
from crm_inbox.models import (
    Campaign,
    CampaignRecipient,
    Channel,
    ConsentRecord,
    ConsentState,
    Contact,
    Direction,
    Interaction,
    InteractionKind,
    Opportunity,
    RecipientState,
    StaffUser,
    utcnow,
)
from crm_inbox.sales.inputs import OpportunityFields
from crm_inbox.sales.opportunities import create_opportunity, link_interaction

MAX_REFERENCES = 50
SCAN_CHARS = 3000  # of the reply's own words: a wish to be unsubscribed is said near the top
# A bounce without the returned original: the address's campaign mail of the last days is the one that failed.
BOUNCE_WINDOW = timedelta(days=3)
# Feedback types (RFC 5965) that are a person's complaint; "not-spam" and DMARC's "auth-failure" are not.
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "other", ""})

# --- a wish to be unsubscribed (pure) ---

# Where the quoted mail begins in a reply: our own footer ("Abmelden: https://…") sits below it.
_QUOTE_START = re.compile(
    r"^[ \t]*(?:-{2,}[ \t]*(?:original(?:[- ]nachricht| message)|ursprüngliche nachricht|weitergeleitete nachricht|"
    r"forwarded message|message d'origine)"
    r"|_{8,}[ \t]*$"
    r"|(?:am|on|le|el|il|op)\b[^\n]{0,200}(?:\n[^\n]{0,200})?\b(?:schrieb|wrote|a écrit|escribió|ha scritto|"
    r"schreef)\b[^\n]{0,80}:[ \t]*$"
    r"|(?:von|from|de)[ \t]*:[^\n]*\n[ \t]*(?:gesendet|sent|datum|date|envoyé|an|to)[ \t]*:)",
    re.IGNORECASE | re.MULTILINE)
_LINK = re.compile(r"(?:https?://|mailto:|www\.)\S+|<[^<>\s]+@[^<>\s]+>", re.IGNORECASE)
_WISH = re.compile(r"\b(?:" + "|".join((
    # German
    r"ab(?:zu)?melden|abmeldung|abbestell\w*|austragen|austragung",
    r"meld\w*[ \t]+(?:sie[ \t]+)?(?:mich|uns)[ \t]+(?:[\w.]+[ \t]+){0,4}?ab\b",  # "melden Sie mich bitte ab"
    r"trag\w*[ \t]+(?:sie[ \t]+)?mich\b[^\n]{0,60}\baus\b",
    r"streich\w*[ \t]+(?:sie[ \t]+)?(?:mich|uns)\b",
    r"aus[ \t]+(?:dem|ihrem|eurem|deinem|diesem)[ \t]+(?:[\w-]+[ \t]+)?[\w-]*verteiler",
    r"keine[ \t]+(?:weiteren?[ \t]+)?(?:e-?mails?|mails?|werbung|werbe-?mails?|newsletter|nachrichten|zusendungen)\b",
    r"nicht[ \t]+mehr[ \t]+(?:an)?(?:schreiben|kontaktieren|zusenden|anmailen|belästigen|mailen)",
    r"(?:widerspreche|widerspruch)\b[^\n]{0,80}(?:werbung|werbe|newsletter|mails?\b)",
    r"(?:lösch|loesch)\w*[ \t]+(?:sie[ \t]+)?(?:mich|meine[ \t]+(?:daten|adresse|e-?mail))",
    # English
    r"unsubscrib\w*|opt[- ]?out|take[ \t]+me[ \t]+off|remove[ \t]+(?:me|my[ \t]+(?:address|e-?mail))",
    r"stop[ \t]+(?:sending|e-?mailing|mailing|contacting)",
    r"no[ \t]+(?:more|further)[ \t]+(?:e-?mails?|mails?|messages|newsletters?)",
    r"(?:do[ \t]+not|don'?t)[ \t]+(?:contact|e-?mail|mail|write[ \t]+to)[ \t]+me",
)) + ")", re.IGNORECASE)
_ONLY_STOP = re.compile(r"^[^\w\n]*stop[^\w\n]*$", re.IGNORECASE | re.MULTILINE)  # "STOP" on a line of its own


def own_words(text: str) -> str:
    """The reply's own text: above the quoted mail, without quoted lines and links."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")[:100_000]
    start = _QUOTE_START.search(text)
    if start is not None:
        text = text[:start.start()]
    text = "\n".join(line for line in text.split("\n") if not line.lstrip().startswith(">"))
    return _LINK.sub(" ", text)[:SCAN_CHARS]


def unsubscribe_wish(text: str) -> str | None:
    """The words in ``text`` (a reply's subject and text) that ask to be taken off the list, or None."""
    words = own_words(text)
    stop = _ONLY_STOP.search(words)
    if stop is not None:
        return stop.group(0).strip()
    match = _WISH.search(words)
    return " ".join(match.group(0).split()) if match else None


def asks_to_unsubscribe(text: str) -> bool:
    """Does the reply ask to be unsubscribed ("abmelden", "austragen", "unsubscribe", "remove me" …)? Only its
    own words count, not the quoted campaign mail below it (whose footer offers exactly that)."""
    return unsubscribe_wish(text) is not None


# --- Message-IDs of the original a report is about (pure) ---

_MESSAGE_ID_LINE = re.compile(r"^[ \t>]*message-id[ \t]*:[ \t]*(<[^<>\s]{3,990}>)", re.IGNORECASE | re.MULTILINE)


def original_message_ids(msg: Message, text: str = "") -> list[str]:
    """The Message-IDs of the mail a delivery or feedback report returns: from its attached original
    (message/rfc822, or only its headers) and, for reports that paste the original into their text (qmail),
    from a Message-ID line there. Our Message-IDs are random, so a stray match cannot hit a campaign mail."""
    found: list[str] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                found.extend(str(v).strip() for v in inner[0].get_all("Message-ID") or [])
        elif ctype in ("text/rfc822-headers", "text/global-headers"):
            headers = HeaderParser().parsestr(part_text(part).replace("\r\n", "\n"), headersonly=True)
            found.extend(str(v).strip() for v in headers.get_all("Message-ID") or [])
    found.extend(_MESSAGE_ID_LINE.findall(text[:200_000]))
    return [m for m in dict.fromkeys(found) if m][:MAX_REFERENCES]


def feedback_type(msg: Message) -> str:
    """The Feedback-Type of an ARF report (lower case; "" when it says none)."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/feedback-report":
            payload = part.get_payload()
            blocks = payload if isinstance(payload, list) else []
            for block in blocks:
                if isinstance(block, Message) and block.get("Feedback-Type"):
                    return str(block.get("Feedback-Type")).strip().lower()
            text = payload if isinstance(payload, str) else ""
        elif ctype == "text/plain":
            text = part_text(part)[:2000]
        else:
            continue
        match = re.search(r"^feedback-type[ \t]*:[ \t]*([\w-]+)", text, re.IGNORECASE | re.MULTILINE)
        if match:
            return match.group(1).lower()
    return ""


# --- replies ---

def _variants(references: Iterable[str]) -> list[str]:
    """Each reference as given and with the angle brackets we store (clients that drop them exist)."""
    out: list[str] = []
    for ref in references:
        ref = ref.strip()
        if ref:
            out += [ref, ref if ref.startswith("<") else f"<{ref.strip('<>')}>"]
    return list(dict.fromkeys(out))[:MAX_REFERENCES * 2]


def variants(references: Sequence[str]) -> list[str]:
    """The Message-IDs ``RECIPIENTS_BY_MESSAGE_ID`` is asked for (its ``variants``) for a mail's references."""
    return _variants(references[:MAX_REFERENCES])


# Asked for every person's mail that answers another: built once (SQLAlchemy reuses its compiled form). Rows:
# the send-ledger row's id and the Message-ID of the campaign mail.
RECIPIENTS_BY_MESSAGE_ID = select(CampaignRecipient.id, CampaignRecipient.message_id).where(
    CampaignRecipient.message_id.in_(bindparam("variants", expanding=True)))


def recipient_for(session: Session, references: Sequence[str],
                  answered: Sequence[tuple[int, str]] | None = None) -> CampaignRecipient | None:
    """The send-ledger row of the campaign mail the first of ``references`` that is ours names. ``answered``: the
    rows of ``RECIPIENTS_BY_MESSAGE_ID`` when the caller read them already (the pipeline reads a reply's
    look-ups in one statement), else they are read here."""
    refs = variants(references)
    if not refs:
        return None
    rows = (session.connection().execute(RECIPIENTS_BY_MESSAGE_ID, {"variants": refs}).all()  # Core: every reply asks
            if answered is None else answered)
    if not rows:
        return None
    by_id = {message_id: rid for rid, message_id in rows}
    first = next(by_id[r] for r in refs if r in by_id)  # In-Reply-To before References
    return session.get_one(CampaignRecipient, first)


def link_reply(session: Session, interaction: Interaction, references: Sequence[str],
               answered: Sequence[tuple[int, str]] | None = None) -> CampaignRecipient | None:
    """A reply to a campaign mail (our Message-ID in its In-Reply-To/References): the recipient's first reply and
    its time go into the send ledger, the campaign into the reply's details (the timeline links it). Later replies
    of the same person are linked to the campaign too but do not replace the first. None when it answers no
    campaign mail. The caller decides it is a person's reply (not a robot's). ``answered``: see ``recipient_for``."""
    recipient = recipient_for(session, references, answered)
    if recipient is None:
        return None
    campaign = session.get_one(Campaign, recipient.campaign_id)
    session.execute(update(CampaignRecipient).where(
        CampaignRecipient.id == recipient.id, CampaignRecipient.reply_interaction_id.is_(None)).values(
        reply_interaction_id=interaction.id,
        replied_at=func.coalesce(CampaignRecipient.replied_at, interaction.occurred_at)))
    interaction.details = {**interaction.details, "campaign_id": campaign.id, "campaign": campaign.name,
                           "campaign_recipient_id": recipient.id}
    session.refresh(recipient)
    return recipient


# --- opt-outs ---

def record_opt_out(session: Session, contact_id: int, *, at: datetime, campaign_id: int | None = None) -> int:
    """The person opted out (one-click link, complaint, confirmed reply): ``opted_out_at`` on the released
    campaign mail that made them do it, for that campaign's figures; how many rows. ``campaign_id`` names it (the
    link's token, the complained-about or answered mail); None (a link from before tokens named the campaign)
    marks every released campaign mail of theirs that has none yet."""
    conditions = [CampaignRecipient.contact_id == contact_id, CampaignRecipient.state == RecipientState.RELEASED,
                  CampaignRecipient.opted_out_at.is_(None)]
    if campaign_id is not None:
        conditions.append(CampaignRecipient.campaign_id == campaign_id)
    return affected(session.execute(update(CampaignRecipient).where(*conditions).values(opted_out_at=at)))


def _opted_out(session: Session, contact_id: int) -> bool:
    consent = ledger.current(session, [contact_id], Channel.EMAIL)[contact_id]
    return consent is not None and consent.state == ConsentState.OPTED_OUT


def complaint(session: Session, recipients: Sequence[CampaignRecipient], *, report_id: str | None,
              report_date: datetime, kind: str, inbound_id: int | None) -> list[str]:
    """An ARF complaint about these campaign mails: each person opted out for e-mail (source "complaint", the
    report as proof) unless they are already; notes for the mail's reason."""
    notes: list[str] = []
    for recipient in recipients:
        if recipient.contact_id is None:
            continue
        if _opted_out(session, recipient.contact_id):
            notes.append(f"spam complaint about campaign {recipient.campaign_id}: contact {recipient.contact_id} "
                         "had opted out already")
        else:
            ledger.record(session, recipient.contact_id, Channel.EMAIL, ConsentState.OPTED_OUT, None, "complaint",
                          {"via": "feedback_report", "feedback_type": kind or None, "report_message_id": report_id,
                           "report_date": report_date.isoformat(), "inbound_message_id": inbound_id,
                           "campaign_id": recipient.campaign_id, "original_message_id": recipient.message_id,
                           "address": recipient.address},
                          occurred_at=report_date)
            notes.append(f"spam complaint about campaign {recipient.campaign_id}: contact {recipient.contact_id} "
                         "opted out of e-mail")
        record_opt_out(session, recipient.contact_id, at=report_date, campaign_id=recipient.campaign_id)
    return notes


def mark_bounced(session: Session, msg: Message, text: str, bounced: Sequence[str], *, at: datetime) -> list[str]:
    """A delivery report that says our mail failed: the campaign mails it returns (by their Message-ID) are
    bounced; without a returned original, the failed addresses' campaign mails of the last days."""
    ids = original_message_ids(msg, text)
    rows = [r for r in (session.execute(select(CampaignRecipient).where(
        CampaignRecipient.message_id.in_(_variants(ids)))).scalars().all() if ids else [])]
    if not ids:
        since = at - BOUNCE_WINDOW
        for address in dict.fromkeys(bounced):
            latest = session.execute(select(CampaignRecipient).where(
                CampaignRecipient.address == address, CampaignRecipient.state == RecipientState.RELEASED,
                CampaignRecipient.released_at >= since).order_by(
                CampaignRecipient.released_at.desc(), CampaignRecipient.id.desc()).limit(1)).scalar_one_or_none()
            if latest is not None:
                rows.append(latest)
    notes = []
    for recipient in rows:
        if recipient.bounced_at is None:
            recipient.bounced_at = at
            notes.append(f"campaign {recipient.campaign_id}: the mail to contact {recipient.contact_id} bounced")
    return notes


# --- the pipeline's entry ---

@dataclass(frozen=True)
class MailFacts:
    """What the pipeline knows of an inbound mail, for ``file_mail``."""

    direction: Direction
    automatic: bool
    bounced: tuple[str, ...]  # failed recipients, when it is a delivery report
    spoof_suspected: bool
    contact_ids: tuple[int, ...]  # whom the mail was linked to
    inbound_id: int | None


def file_mail(session: Session, interaction: Interaction, parsed: ParsedMail, facts: MailFacts,
              answered: Sequence[tuple[int, str]] | None = None) -> list[str]:
    """Replies, wishes to unsubscribe, complaints and bounces of campaign mail (see the module); notes for the
    mail's reason. Most mail costs no query: only reports and mail that answers something are looked at.
    ``answered``: see ``recipient_for``."""
    if facts.automatic:
        return _robot(session, interaction, parsed, facts, answered)
    references = [*parsed.in_reply_to, *parsed.references]
    if facts.direction != Direction.IN or not references:
        return []
    if facts.spoof_suspected:
        recipient = recipient_for(session, references, answered)
        return [f"answers a mail of campaign {recipient.campaign_id}, not counted: the mail may be spoofed"] \
            if recipient is not None else []
    recipient = link_reply(session, interaction, references, answered)
    if recipient is None:
        return []
    notes = [f"reply to campaign {recipient.campaign_id} “{interaction.details.get('campaign')}”"]
    if recipient.contact_id is not None and recipient.contact_id not in facts.contact_ids:
        notes.append(f"(the campaign mail went to contact {recipient.contact_id})")
    wish = unsubscribe_wish(parsed.text) or _subject_wish(session, recipient, parsed.subject)
    if wish is not None:
        # A suggestion for staff, never an opt-out by itself (see the module): a person confirms it in triage.
        interaction.details = {**interaction.details, "unsubscribe_suggestion": {
            "campaign_id": recipient.campaign_id, "contact_id": recipient.contact_id, "address": recipient.address,
            "words": wish[:200],
            "text": f"asks to be unsubscribed (“{wish[:80]}”): confirm the opt-out or dismiss it"}}
        notes.append(f"asks to be unsubscribed (“{wish[:80]}”): left for staff to confirm in triage")
    return notes


def _subject_wish(session: Session, recipient: CampaignRecipient, subject: str) -> str | None:
    """A wish in the reply's subject ("Abmelden"), unless our own subject says the same words (a reply keeps it)."""
    wish = unsubscribe_wish(subject)
    if wish is None:
        return None
    mailed = session.get(Interaction, recipient.interaction_id) if recipient.interaction_id else None
    return None if mailed is not None and unsubscribe_wish(mailed.subject or "") else wish


def _robot(session: Session, interaction: Interaction, parsed: ParsedMail, facts: MailFacts,
           answered: Sequence[tuple[int, str]] | None) -> list[str]:
    notes: list[str] = []
    msg = parsed.message
    kind = report_type(msg)
    at = min(interaction.occurred_at, utcnow())
    if kind == "feedback-report":
        ftype = feedback_type(msg)
        ids = original_message_ids(msg, parsed.text)
        if ftype not in COMPLAINT_TYPES or not ids:
            return notes
        recipients = session.execute(select(CampaignRecipient).where(
            CampaignRecipient.message_id.in_(_variants(ids)))).scalars().all()
        return complaint(session, recipients, report_id=parsed.message_id, report_date=at, kind=ftype,
                         inbound_id=facts.inbound_id)
    if facts.bounced:
        return mark_bounced(session, msg, parsed.text, facts.bounced, at=at)
    if facts.direction == Direction.IN and (parsed.in_reply_to or parsed.references):
        recipient = recipient_for(session, [*parsed.in_reply_to, *parsed.references], answered)
        if recipient is not None:  # an out-of-office answer: no responder, no lead
            notes.append(f"an automatic answer to campaign {recipient.campaign_id}: not counted as a reply")
    return notes


# --- triage: wishes to be unsubscribed ---

def unsubscribe_suggested(days: int = 30) -> Select[Interaction]:
    """Replies of the last ``days`` that ask to be unsubscribed and wait for staff, newest first (for triage)."""
    since: datetime = utcnow() - timedelta(days=days)
    return (select(Interaction).where(
        Interaction.occurred_at >= since, Interaction.kind == InteractionKind.EMAIL,
        Interaction.direction == Direction.IN,
        Interaction.details["unsubscribe_suggestion"].as_string().is_not(None))
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc()))


def _suggestion(session: Session, interaction_id: int) -> tuple[Interaction, dict[str, Any]]:
    item = session.get(Interaction, interaction_id)
    if item is None:
        raise NotFound(f"no interaction {interaction_id}")
    suggestion = item.details.get("unsubscribe_suggestion")
    if not isinstance(suggestion, dict):
        raise Conflict("this mail has no open wish to be unsubscribed (decided already?)")
    return item, suggestion


def _settle(item: Interaction, suggestion: dict[str, Any], outcome: str, actor: int | None) -> None:
    details = {k: v for k, v in item.details.items() if k != "unsubscribe_suggestion"}
    item.details = details | {"unsubscribe_decided": {
        "outcome": outcome, "by": actor, "at": utcnow().isoformat(), "campaign_id": suggestion.get("campaign_id"),
        "contact_id": suggestion.get("contact_id")}}


def confirm_unsubscribe(session: Session, interaction_id: int, *, actor: int | None) -> ConsentRecord | None:
    """Staff read the reply and confirm its wish: the person is opted out of e-mail (source "reply", the mail as
    proof, at the time they wrote it), the campaigns' figures count it; None when they had opted out already."""
    item, suggestion = _suggestion(session, interaction_id)
    contact_id = suggestion.get("contact_id")
    if not isinstance(contact_id, int) or session.get(Contact, contact_id) is None:
        raise Conflict("the person the campaign mail went to is no longer in the CRM")
    at = min(item.occurred_at, utcnow())
    row = None
    if not _opted_out(session, contact_id):
        row = ledger.record(session, contact_id, Channel.EMAIL, ConsentState.OPTED_OUT, None, "reply",
                            {"via": "reply", "interaction_id": item.id, "message_id": item.source_ref,
                             "words": suggestion.get("words"), "campaign_id": suggestion.get("campaign_id"),
                             "confirmed_by": actor},
                            occurred_at=at, actor=actor)
    campaign_id = suggestion.get("campaign_id")
    record_opt_out(session, contact_id, at=at, campaign_id=campaign_id if isinstance(campaign_id, int) else None)
    _settle(item, suggestion, "opted_out", actor)
    audit.record(session, actor, "unsubscribe.confirm", "interaction", item.id,
                 {"contact_id": contact_id, "record": row.id if row else None})
    return row


def dismiss_unsubscribe(session: Session, interaction_id: int, *, actor: int | None) -> None:
    """Staff read the reply: it does not ask to be unsubscribed. Kept on the mail as decided, audited."""
    item, suggestion = _suggestion(session, interaction_id)
    _settle(item, suggestion, "dismissed", actor)
    audit.record(session, actor, "unsubscribe.dismiss", "interaction", item.id,
                 {"contact_id": suggestion.get("contact_id")})


# --- qualifying a responder ---

def qualify(session: Session, settings: Settings, recipient_id: int, *, actor: int,
            campaign_id: int | None = None) -> Opportunity:
    """An opportunity (source "campaign") for the person who replied, with the reply on it; the send ledger keeps
    it. NotFound when the recipient is not one of ``campaign_id`` (when given); Conflict when it has one already,
    has not replied or was erased; Forbidden for read-only users."""
    service.require_staff(session, actor)
    recipient = session.get(CampaignRecipient, recipient_id)
    if recipient is None or (campaign_id is not None and recipient.campaign_id != campaign_id):
        raise NotFound(f"campaign {campaign_id} has no recipient {recipient_id}" if campaign_id is not None
                       else f"no campaign recipient {recipient_id}")
    if recipient.opportunity_id is not None:
        raise Conflict(f"an opportunity exists already for this reply (opportunity {recipient.opportunity_id})")
    if recipient.contact_id is None:
        raise Conflict("the person was erased")
    reply = session.get(Interaction, recipient.reply_interaction_id) if recipient.reply_interaction_id else None
    if reply is None:
        raise Conflict("only a reply to the campaign can be qualified into an opportunity")
    campaign = session.get_one(Campaign, recipient.campaign_id)
    contact = session.get_one(Contact, recipient.contact_id)
    owner = session.get(StaffUser, contact.owner_id) if contact.owner_id else None
    opp = create_opportunity(session, settings, OpportunityFields(
        title=f"{campaign.name}: {contact.display_name}"[:300], contact_id=contact.id,
        owner_id=owner.id if owner is not None and owner.active else None, source="campaign"), by=actor)
    link_interaction(session, opp, reply, f"reply to campaign “{campaign.name}”")
    mailed = session.get(Interaction, recipient.interaction_id) if recipient.interaction_id else None
    if mailed is not None:  # the campaign mail too: later answers to it land on the deal (sales.replies)
        link_interaction(session, opp, mailed, f"campaign mail “{campaign.name}”")
    # Two clicks at once: the second finds the row taken and its whole transaction (the new deal) rolls back.
    if not affected(session.execute(update(CampaignRecipient).where(
            CampaignRecipient.id == recipient.id, CampaignRecipient.opportunity_id.is_(None)).values(
            opportunity_id=opp.id))):
        raise Conflict("an opportunity was made for this reply meanwhile")
    session.refresh(recipient)
    audit.record(session, actor, "campaign.qualify", "campaign", campaign.id,
                 {"recipient_id": recipient.id, "contact_id": contact.id, "opportunity_id": opp.id})
    return opp
