"""The letter campaign (Serienbrief): one PDF with one DIN 5008 letter per included recipient, and the same
recipients as CSV/XLSX for a word processor's own mail merge.

The letters share the quote PDF's page (``sales.pdf``: letterhead from ``[company]``, the return line above the
address window at the form B positions, information block, fold marks, the footer with the business details).
Each letter starts on a new page and counts its own pages ("Seite 1 von 2"). 50,000 letters are laid out as a
stream: the story is fed to reportlab a batch of recipients at a time, and a letter's pages are finished (numbered,
compressed) as soon as the next letter begins. What stays until reportlab writes the file (it writes the whole
document at the end) is each finished page, about 3 KB a letter; the letterhead and footer are stored once.

Printing is sending: the consent is checked again (an objection since the campaign started wins), the ledger
moves QUEUED → PRINTED with an entry on each timeline, and the campaign is DONE. A reprint (the printer jammed)
is the same PDF of the printed letters, dated as first printed, and records nothing.
"""

from __future__ import annotations

import csv
import functools
import io
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.pdfbase.pdfdoc import PDFArray, PDFName, PDFStream, PDFZCompress  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]
from reportlab.platypus import (  # type: ignore[import-untyped]
    BaseDocTemplate,
    Flowable,
    Frame,
    KeepTogether,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
)
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, joinedload

from crm_inbox import audit
from crm_inbox.campaigns import audience, placeholders, service
from crm_inbox.config import CompanySettings, Settings
from crm_inbox.contacts.csv_export import neutralise
from crm_inbox.db import affected
from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.exports import formats
from crm_inbox.exports.service import ExportFile
from crm_inbox.exports.tables import Sheet
from crm_inbox.models import (
    Campaign,
    CampaignRecipient,
    CampaignState,
    Channel,
    Company,
    Contact,
    Direction,
    InteractionKind,
    RecipientState,
    utcnow,
)
from crm_inbox.sales import letters as postal
from crm_inbox.sales import pdf
from crm_inbox.sales.document import format_date, texts
from crm_inbox.timeline.service import record_interaction

BATCH = 500  # recipients read, rendered and recorded at a time
MERGE_COLUMNS = ("Anrede-Zeile", "Anrede", "Titel", "Vorname", "Nachname", "Firma", "Straße", "PLZ", "Ort", "Land",
                 "Briefanrede", "Kundennummer", "E-Mail")
MERGE_FORMATS = {"csv": "text/csv; charset=utf-8", "xlsx": formats.MIMETYPES["xlsx"]}

WORDS = {
    "de": {"contact_person": "Ansprechpartner", "objection": "Sie können der Verwendung Ihrer Daten für Werbung "
           "jederzeit widersprechen: {how}.", "by_mail": "per E-Mail an {}", "by_phone": "telefonisch unter {}",
           "by_post": "schriftlich an {}", "or": " oder "},
    "en": {"contact_person": "Your contact", "objection": "You may object to the use of your data for advertising "
           "at any time: {how}.", "by_mail": "by e-mail to {}", "by_phone": "by phone on {}",
           "by_post": "in writing to {}", "or": " or "},
}
# A text that begins with its own greeting or ends with its own closing gets neither printed a second time.
_GREETINGS = ("sehr geehrte", "liebe", "lieber", "hallo", "guten tag", "dear", "hello")
_CLOSINGS = ("grüße", "grüßen", "gruß", "grüssen", "grüsse", "regards", "sincerely", "best wishes")


@dataclass(frozen=True)
class Letter:
    """One recipient's letter, as printed."""

    recipient_id: int
    contact_id: int
    language: str  # "de" | "en": the frame's words (date, page, closing)
    address: list[str]
    day: date
    customer_number: str
    subject: str
    greeting: str  # "" when the text brings its own
    text: str
    closing: bool  # print "Mit freundlichen Grüßen" and the sender (the text has no closing of its own)
    sender: str

    @property
    def printed_text(self) -> str:
        """What the timeline keeps: the letter from its greeting to its end."""
        return "\n\n".join(part for part in (self.greeting, self.text.strip()) if part)


# --- pure decisions ---

def split_greeting(text: str, greeting: str) -> tuple[str, str]:
    """(greeting to print, text): none when the text's first line is a greeting already."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    own = first == greeting.strip() or (first.endswith(",") and first.casefold().startswith(_GREETINGS))
    return ("" if own else greeting), text


def has_closing(text: str) -> bool:
    """Does the text end with a closing formula of its own ("Viele Grüße", "Kind regards")?"""
    last = [line.strip().casefold() for line in text.splitlines() if line.strip()][-4:]
    return any(word in line for line in last if len(line) <= 40 for word in _CLOSINGS)  # a line, not a sentence


def objection_notice(company: CompanySettings, language: str) -> str:
    """Art. 21(2)-(4) GDPR: the person may object to direct marketing at any time, told clearly and apart from
    the rest: how to reach us for it (e-mail, phone, else post)."""
    words = WORDS[language]
    ways = [words["by_mail"].format(company.email.strip()) if company.email.strip() else "",
            words["by_phone"].format(company.phone.strip()) if company.phone.strip() else ""]
    ways = [way for way in ways if way]
    if not ways:
        place = " ".join(p for p in (company.postcode.strip(), company.city.strip()) if p)
        where = ", ".join(p for p in (company.name.strip(), company.street.strip(), place) if p)
        ways = [words["by_post"].format(where)] if where else []
    return words["objection"].format(how=words["or"].join(ways)) if ways else words["objection"].split(":")[0] + "."


def local_day(moment: datetime, settings: Settings) -> date:
    """The day the letters are dated: the print's day where the staff are."""
    try:
        return moment.astimezone(ZoneInfo(settings.reminders.timezone)).date()
    except (KeyError, ValueError):
        return moment.date()


def _language(value: Any) -> str:
    return "de" if str(value or "").startswith("de") else "en"


# --- the PDF ---

class _Story(list[Any]):
    """The flowables, fetched a batch at a time: reportlab asks ``len()`` before each flowable it lays out, and
    this list refills itself from the source then, so it never holds more than a batch of letters."""

    def __init__(self, source: Iterator[list[Any]]) -> None:
        super().__init__()
        self._source: Iterator[list[Any]] | None = source

    def __len__(self) -> int:
        while self._source is not None and super().__len__() < 64:
            more = next(self._source, None)
            if more is None:
                self._source = None
            else:
                self.extend(more)
        return super().__len__()


class _LetterCanvas(Canvas):
    """Keeps the pages of the current letter only: when the next letter begins (or the document ends), they are
    numbered ("Seite 1 von 2") and written, so a letter's page count restarts and only its pages wait here."""

    def __init__(self, *args: Any, numbers: Callable[[Canvas, Letter, int, int], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._numbers = numbers
        self.letter: Letter | None = None
        self._kept: list[dict[str, Any]] = []

    def showPage(self) -> None:
        self._kept.append(dict(self.__dict__))
        self._startPage()

    def begin_letter(self, letter: Letter) -> None:
        self._finish()
        self.letter = letter

    def _finish(self) -> None:
        kept, current = self._kept, dict(self.__dict__)
        for number, state in enumerate(kept, start=1):
            self.__dict__.update(state)
            if self.letter is not None:
                self._numbers(self, self.letter, number, len(kept))
            super().showPage()
            _compress_now(self._doc.Pages.pages[-1])
        self.__dict__.update(current)  # back to the page being drawn (its number included)
        self._kept = []

    def save(self) -> None:
        self._finish()
        super().save()


def _compress_now(page: Any) -> None:
    """Compress a written page's content stream at once rather than when the file is saved (what reportlab
    would do): the text of 50,000 pages would otherwise wait uncompressed in memory. Same bytes either way."""
    if page.stream is None or page.Contents or not page.compression:
        return
    stream = PDFStream(content=zlib.compress(page.stream.encode("utf-8")))
    stream.dictionary["Filter"] = PDFArray([PDFName(PDFZCompress.pdfname)])
    stream.__Comment__ = "page stream"
    page.Contents, page.stream = stream, None


class _Layout:
    """What is drawn at fixed positions: the company's parts on the page templates, the recipient's (window,
    information block) by the flowable that begins each letter."""

    def __init__(self, company: CompanySettings, logo: Any, sender: str) -> None:
        self.company, self.logo, self.sender = company, logo, sender
        self.regular, self.bold = pdf.fonts()
        self.styles = pdf.styles_of(self.regular, self.bold)

    def info_rows(self, letter: Letter) -> list[tuple[str, str]]:
        words, extra = texts(letter.language), WORDS[letter.language]
        rows = [(words["customer_no"], letter.customer_number)] if letter.customer_number else []
        if self.sender:
            rows.append((extra["contact_person"], self.sender))
        return [*rows, (words["date"], format_date(letter.day, letter.language)), (words["page"], "")]

    def _form(self, canvas: Canvas, name: str, draw: Callable[[Canvas], None]) -> None:
        # What every first (or later) page shares is one form XObject drawn by reference: 50,000 letters
        # carry the letterhead and footer once, not 50,000 times.
        if not canvas.hasForm(name):
            canvas.beginForm(name)
            draw(canvas)
            canvas.endForm()
        canvas.doForm(name)

    def _letterhead(self, canvas: Canvas) -> None:
        # The frame's words follow the company's language: the letterhead is the same for every letter.
        pdf.draw_letterhead(canvas, self.company, self.logo, regular=self.regular, bold=self.bold,
                            phone_label=texts(_language(self.company.language))["phone"])
        self._furniture(canvas)

    def _furniture(self, canvas: Canvas) -> None:
        pdf.draw_furniture(canvas, self.company, _language(self.company.language), self.regular)

    def first(self, canvas: Canvas, _doc: Any) -> None:
        self._form(canvas, "CrmLetterFirst", self._letterhead)

    def later(self, canvas: Canvas, _doc: Any) -> None:
        letter: Letter | None = getattr(canvas, "letter", None)
        title = letter.subject if letter is not None else ""
        room = pdf.WIDTH - canvas.stringWidth(self.company.name, self.bold, 9) - 10 * mm
        while title and canvas.stringWidth(title, self.regular, 9) > room:
            title = title[:-2] + "…"
        pdf.draw_later_header(canvas, self.company, title, regular=self.regular, bold=self.bold)
        self._form(canvas, "CrmLetterLater", self._furniture)

    def recipient(self, canvas: Canvas, letter: Letter) -> None:
        pdf.draw_window(canvas, self.company, letter.address, self.regular)
        pdf.draw_info(canvas, self.info_rows(letter), self.regular, self.regular)

    def numbers(self, canvas: Canvas, letter: Letter, page: int, pages: int) -> None:
        words = texts(letter.language)
        pdf.draw_page_number(canvas, f"{words['page']} {page} {words['of']} {pages}", self.regular)
        if page == 1:
            pdf.draw_info_value(canvas, len(self.info_rows(letter)) - 1, f"{page} {words['of']} {pages}",
                                self.regular)

    def story(self, letter: Letter, *, first: bool) -> list[Any]:
        styles, text = self.styles, pdf.paragraph_text
        out: list[Any] = [] if first else [NextPageTemplate("first"), PageBreak()]
        out += [_LetterStart(letter, self), NextPageTemplate("later"),
                Paragraph(text(letter.subject), styles["subject"]), Spacer(1, 6 * mm)]
        if letter.greeting:
            out += [Paragraph(text(letter.greeting), styles["body"]), Spacer(1, 3 * mm)]
        for block in _paragraphs(letter.text):
            out += [Paragraph(text(block), styles["body"]), Spacer(1, 3 * mm)]
        closing: list[Any] = []
        if letter.closing:
            closing += [Spacer(1, 3 * mm), Paragraph(text(texts(letter.language)["closing"]), styles["body"]),
                        Spacer(1, 8 * mm)]
            closing += [Paragraph(text(name), styles["body"]) for name in (self.sender, self.company.name)
                        if name.strip()]
        closing += [Spacer(1, 8 * mm), Paragraph(text(objection_notice(self.company, letter.language)),
                                                 styles["small"])]
        out.append(KeepTogether(closing))
        return out


class _LetterStart(Flowable):
    """Begins a letter: takes no room in the flow, draws the recipient's window and information block at their
    fixed places, and tells the canvas that a new page count starts."""

    def __init__(self, letter: Letter, layout: _Layout) -> None:
        super().__init__()
        self.letter, self.layout = letter, layout

    def wrap(self, _width: float, _height: float) -> tuple[float, float]:
        return 0, 0

    def drawOn(self, canvas: Canvas, x: float, y: float, _sW: float = 0) -> None:
        canvas.begin_letter(self.letter)
        self.layout.recipient(canvas, self.letter)


def _paragraphs(text: str) -> list[str]:
    blocks, current = [], []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.strip():
            current.append(line.rstrip())
        elif current:
            blocks.append("\n".join(current))
            current = []
    return blocks + (["\n".join(current)] if current else [])


def render_pdf(batches: Iterable[list[Letter]], company: CompanySettings, *, sender: str, title: str,
               instance_dir: Path | None = None) -> bytes:
    """The letters as one PDF (invariant: the same letters give the same bytes)."""
    layout = _Layout(company, pdf.load_logo(company, instance_dir), sender)
    count = 0

    def flowables() -> Iterator[list[Any]]:
        nonlocal count
        for batch in batches:
            chunk: list[Any] = []
            for letter in batch:
                chunk += layout.story(letter, first=count == 0)
                count += 1
            yield chunk

    # reportlab joins the whole file in memory once; written to a temporary file rather than a BytesIO, it is
    # not held twice more (the buffer and its copy) while 50,000 letters' worth of PDF is handed back.
    with tempfile.TemporaryFile() as out:
        doc = BaseDocTemplate(out, pagesize=A4, leftMargin=pdf.LEFT, rightMargin=pdf.RIGHT, topMargin=20 * mm,
                              bottomMargin=pdf.FOOTER_TOP, title=title, author=company.name, creator="CRM Inbox",
                              invariant=1)
        body = pdf.PAGE_HEIGHT - pdf.BODY_TOP - pdf.FOOTER_TOP - 2 * mm
        first = Frame(pdf.LEFT, pdf.FOOTER_TOP + 2 * mm, pdf.WIDTH, body, id="first", leftPadding=0, rightPadding=0,
                      topPadding=0, bottomPadding=0)
        later = Frame(pdf.LEFT, pdf.FOOTER_TOP + 2 * mm, pdf.WIDTH, pdf.PAGE_HEIGHT - 25 * mm - pdf.FOOTER_TOP - 2 * mm,
                      id="later", leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
        doc.addPageTemplates([PageTemplate(id="first", frames=[first], onPage=layout.first),
                              PageTemplate(id="later", frames=[later], onPage=layout.later)])
        doc.build(_Story(flowables()), canvasmaker=functools.partial(_LetterCanvas, numbers=layout.numbers))
        if count == 0:
            raise Conflict("there are no letters to print")
        out.seek(0)
        return out.read()


# --- the campaign's letters ---

def _campaign(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id}")
    if campaign.channel != Channel.LETTER:
        raise Conflict("this is an e-mail campaign: only letter campaigns are printed")
    return campaign


def _recipients(session: Session, campaign_id: int, state: RecipientState) -> list[tuple[int, int | None]]:
    return [(rid, cid) for rid, cid in session.execute(
        select(CampaignRecipient.id, CampaignRecipient.contact_id)
        .where(CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == state)
        .order_by(CampaignRecipient.id))]


def _still_allowed(session: Session, settings: Settings,
                   recipients: Sequence[tuple[int, int | None]]) -> tuple[list[tuple[int, int]], dict[int, str]]:
    """Those who may still get the letter (checked now, as a mail is checked at release), and why the others
    may not (recipient id → reason): an objection or erasure since the campaign started wins."""
    allowed: list[tuple[int, int]] = []
    refused: dict[int, str] = {}
    for start in range(0, len(recipients), 1000):
        chunk = recipients[start:start + 1000]
        decided = {m.contact_id: m for m in audience.decide(
            session, [cid for _, cid in chunk if cid is not None], Channel.LETTER)}
        for rid, cid in chunk:
            member = decided.get(cid) if cid is not None else None
            if member is None:
                refused[rid] = "erased"
            elif member.allowed:
                allowed.append((rid, member.contact_id))
            else:
                refused[rid] = member.reason or "no_consent"
    return allowed, refused


def _letters(session: Session, settings: Settings, campaign: Campaign, recipients: Sequence[tuple[int, int]],
             day: date) -> Iterator[list[Letter]]:
    """The letters of these recipients, a batch at a time (a few queries per batch; the rows read are let go
    after each batch, so 50,000 recipients do not pile up in the session)."""
    sender = (campaign.sender_name or "").strip()
    for start in range(0, len(recipients), BATCH):
        chunk = recipients[start:start + BATCH]
        ids = [cid for _, cid in chunk]
        variables = placeholders.facts(session, settings, ids)
        people = {c.id: c for c in session.scalars(
            select(Contact).options(joinedload(Contact.company)).where(Contact.id.in_(ids))).unique()}
        batch: list[Letter] = []
        for rid, cid in chunk:
            contact, facts = people.get(cid), variables.get(cid)
            if contact is None or facts is None:
                continue
            language = _language(facts.get("language"))
            rendered = placeholders.render(campaign.subject, campaign.body, facts, opt_out_url=None)
            greeting, text = split_greeting(rendered.text, str(facts.get("greeting", "")))
            batch.append(Letter(
                recipient_id=rid, contact_id=cid, language=language,
                address=postal.recipient_address(contact, contact.company, settings.company.country, language),
                day=day, customer_number=str(facts.get("customer_number") or ""), subject=rendered.subject,
                greeting=greeting, text=text, closing=not has_closing(text), sender=sender))
        for contact in people.values():
            if contact.company is not None and contact.company in session:
                session.expunge(contact.company)
            if contact in session:
                session.expunge(contact)
        yield batch


def _record(session: Session, campaign: Campaign, batch: list[Letter], *, at: datetime, actor: int | None) -> None:
    """The printed letters on each timeline, and the ledger's rows PRINTED with their entries."""
    printed = []
    for letter in batch:
        item = record_interaction(
            session, kind=InteractionKind.DOCUMENT, direction=Direction.OUT, occurred_at=at,
            subject=letter.subject, text=letter.printed_text, contacts=[(audience.ContactRef(letter.contact_id), "to")],
            staff_ids=[actor] if actor else [], created_by_id=actor,
            details={"campaign_id": campaign.id, "letter": True, "campaign": campaign.name})
        printed.append({"rid": letter.recipient_id, "iid": item.id})
        session.expunge(item)
    if printed:
        table = CampaignRecipient.__table__
        session.execute(update(table).where(table.c.id == bindparam("rid")).values(
            state=RecipientState.PRINTED.value, interaction_id=bindparam("iid"), released_at=at), printed)


def _leave_out(session: Session, campaign: Campaign, refused: dict[int, str]) -> None:
    table = CampaignRecipient.__table__
    session.execute(update(table).where(table.c.id == bindparam("rid")).values(
        state=RecipientState.LEFT_OUT.value, reason=bindparam("why")),
        [{"rid": rid, "why": why} for rid, why in refused.items()])
    left = Counter(dict(campaign.left_out or {}))
    left.update(refused.values())
    campaign.left_out = dict(left)
    campaign.recipient_count = max(0, campaign.recipient_count - len(refused))


def print_letters(session: Session, settings: Settings, campaign_id: int, *, actor: int | None) -> bytes:
    """The campaign's letters as one PDF. The first print takes the queued recipients who may still be written
    to, marks them PRINTED with an entry on each timeline and ends the campaign (DONE); a reprint gives the
    printed letters again, dated as first printed, and records nothing new. Audited either way. Active staff
    users only (not read-only): the first print changes the campaign."""
    service.require_staff(session, actor)
    campaign = _campaign(session, campaign_id)
    now = utcnow()
    refused: dict[int, str] = {}
    # Who prints first is decided by one conditional update: two clicks at once print and record once.
    first = affected(session.execute(
        update(Campaign).where(Campaign.id == campaign.id, Campaign.state == CampaignState.SENDING)
        .values(state=CampaignState.DONE, finished_at=now).execution_options(synchronize_session=False))) == 1
    session.refresh(campaign)
    if first:
        allowed, refused = _still_allowed(session, settings, _recipients(session, campaign.id, RecipientState.QUEUED))
        if refused:
            _leave_out(session, campaign, refused)
        if not allowed:
            raise Conflict("nobody is left to write to: every recipient objected or was erased since the start")
    else:
        if campaign.state in (CampaignState.DRAFT, CampaignState.AWAITING_APPROVAL):
            raise Conflict("the campaign has not been started: start it (and have it approved) first")
        if campaign.state == CampaignState.PAUSED:
            raise Conflict("the campaign is paused: resume it to print")
        # A reprint leaves out whoever objected since: the objection ends every further use (Art. 21(3) GDPR).
        allowed, _ = _still_allowed(session, settings, _recipients(session, campaign.id, RecipientState.PRINTED))
        if not allowed:
            raise Conflict("there are no printed letters to print again")
    day = local_day(campaign.finished_at or now, settings)
    batches = _letters(session, settings, campaign, allowed, day)
    if first:
        batches = _recorded(session, campaign, batches, at=now, actor=actor)
    content = render_pdf(batches, settings.company, sender=(campaign.sender_name or "").strip(),
                         title=campaign.name, instance_dir=settings.instance_path)
    audit.record(session, actor, "print" if first else "reprint", "campaign", campaign.id,
                 {"letters": len(allowed), "left_out": len(refused)})
    return content


def _recorded(session: Session, campaign: Campaign, batches: Iterator[list[Letter]], *, at: datetime,
              actor: int | None) -> Iterator[list[Letter]]:
    for batch in batches:
        _record(session, campaign, batch, at=at, actor=actor)
        yield batch


# --- the data for a word processor's mail merge ---

def _merge_row(contact: Contact, facts: dict[str, Any], home_country: str) -> list[str]:
    language = _language(facts.get("language"))
    company = contact.company
    holder: Contact | Company = contact
    if company is not None and (company.street or company.postcode or company.city or not (
            contact.street or contact.postcode or contact.city)):
        holder = company  # as the letter's window: the company's address, unless it has none
    country = (holder.country or "").strip().upper()
    abroad = country and country != home_country.strip().upper()
    return [postal.person_line(contact.salutation, contact.title, contact.name, language),
            str(facts.get("salutation", "")), contact.title or "", str(facts.get("first_name", "")),
            str(facts.get("last_name", "")), company.name if company is not None else "", holder.street or "",
            holder.postcode or "", holder.city or "",
            postal.country_name(country, language).upper() if abroad else "", str(facts.get("greeting", "")),
            str(facts.get("customer_number", "")), str(facts.get("email", ""))]


def merge_rows(session: Session, settings: Settings, recipients: Sequence[tuple[int, int]]) -> Iterator[list[str]]:
    for start in range(0, len(recipients), BATCH):
        ids = [cid for _, cid in recipients[start:start + BATCH]]
        variables = placeholders.facts(session, settings, ids)
        people = {c.id: c for c in session.scalars(
            select(Contact).options(joinedload(Contact.company)).where(Contact.id.in_(ids))).unique()}
        for cid in ids:
            if cid in people and cid in variables:
                yield _merge_row(people[cid], variables[cid], settings.company.country)
        for contact in people.values():
            if contact.company is not None and contact.company in session:
                session.expunge(contact.company)
            session.expunge(contact)


def merge_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """CSV as German Word and LibreOffice read it without an import dialogue: UTF-8 with a byte-order mark,
    semicolons, CRLF; cells that a spreadsheet would take for a formula neutralised."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([neutralise(h) for h in header])
    writer.writerows([neutralise(cell) for cell in row] for row in rows)
    return out.getvalue().encode("utf-8")


def merge_data(session: Session, settings: Settings, campaign_id: int, file_format: str, *,
               actor: int | None) -> ExportFile:
    """The included recipients (queued or printed, who may still be written to) as CSV or XLSX with one header
    row, for a word processor's own mail merge. Audited as an export; for active staff users (not read-only).

    Letters printed from this data are NOT recorded: no timeline entry, the ledger's rows stay as they are and the
    campaign does not end. Only ``print_letters`` records who got a letter."""
    service.require_staff(session, actor)
    value = (file_format or "").strip().lower()
    if value not in MERGE_FORMATS:
        raise ValidationError("format", "must be csv or xlsx")
    campaign = _campaign(session, campaign_id)
    included = (_recipients(session, campaign.id, RecipientState.PRINTED)
                + _recipients(session, campaign.id, RecipientState.QUEUED))
    allowed, _ = _still_allowed(session, settings, sorted(included))
    rows = list(merge_rows(session, settings, allowed))
    if value == "csv":
        content = merge_csv(MERGE_COLUMNS, rows)
    else:
        content = formats.xlsx_bytes(Sheet(list(MERGE_COLUMNS), [list(row) for row in rows]), "Serienbrief")
    audit.record(session, actor, "export", "campaign", campaign.id,
                 {"format": value, "purpose": "mail_merge", "count": len(rows)})
    return ExportFile(content, MERGE_FORMATS[value], f"campaign-{campaign.id}-serienbrief.{value}", len(rows))
