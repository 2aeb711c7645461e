"""The quote and the order confirmation as an A4 PDF after DIN 5008 form B, with reportlab's platypus.

reportlab because it is maintained (since 2000, BSD), pure Python with no system libraries (WeasyPrint needs
Pango), fast enough for 200 lines in well under a second, and lays out tables that split over pages with the
header repeated. The page furniture (letterhead, the address in the window, the information block, fold marks,
footer) is drawn on the canvas at fixed positions; the body (subject, greeting, lines, totals, terms) flows.
"Seite 1 von 2" needs the page count, so the canvas keeps its pages until the end and numbers them then.
Rendering is deterministic (reportlab's invariant mode): the same document gives the same bytes.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab import rl_config  # type: ignore[import-untyped]
from reportlab.lib import colors  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.lib.utils import ImageReader, simpleSplit  # type: ignore[import-untyped]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]
from reportlab.platypus import (  # type: ignore[import-untyped]
    BaseDocTemplate,
    Flowable,
    Frame,
    KeepTogether,
    NextPageTemplate,
    PageTemplate,
    Paragraph,
    Spacer,
)

from crm_inbox.config import CompanySettings
from crm_inbox.sales.document import (
    DocumentLine,
    SalesDocument,
    business_details,
    document_from_order,
    document_from_quote,
    format_date,
    language_of,
    texts,
)
from crm_inbox.sales.pdf_tables import lines_table, totals_table

__all__ = ["DocumentLine", "SalesDocument", "business_details", "document_from_order", "document_from_quote",
           "render"]

log = logging.getLogger(__name__)
# Binary streams (zlib only) instead of zlib + ASCII85: smaller files and one pure-Python encoder less.
rl_config.useA85 = 0

PAGE_WIDTH, PAGE_HEIGHT = A4
LEFT, RIGHT = 25 * mm, 20 * mm  # DIN 5008 margins; the text starts where the address text starts
WIDTH = PAGE_WIDTH - LEFT - RIGHT
# Form B: the address field is 85 × 45 mm, 20 mm from the left and 45 mm from the top. Its first 17.7 mm are
# the zone for the return address and notes; the address proper fills the 27.3 mm below.
WINDOW_X, WINDOW_TOP, WINDOW_WIDTH, WINDOW_HEIGHT = 20 * mm, 45 * mm, 85 * mm, 45 * mm
ADDRESS_TOP = WINDOW_TOP + 17.7 * mm
INFO_X, INFO_TOP = 125 * mm, 50 * mm  # the information block beside the address field
BODY_TOP = 98.5 * mm  # the subject begins below the address field
FOOTER_TOP = 30 * mm  # from the bottom edge: the business details live below this line
FOLD_MARKS = (105 * mm, 210 * mm)  # form B
PUNCH_MARK = PAGE_HEIGHT / 2

_FONT_PATHS = (Path("/usr/share/fonts/truetype/liberation"), Path("/usr/share/fonts/liberation-sans"),
               Path("/usr/share/fonts/truetype/dejavu"))
_FONT_FILES = {"liberation": ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
               "dejavu": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")}


@functools.cache
def fonts() -> tuple[str, str]:
    """Regular and bold font names. A TrueType sans (Liberation, metric twin of Helvetica) when the system has
    one, so that Polish and Czech names print; else Helvetica, which knows Western European letters only."""
    for folder in _FONT_PATHS:
        for regular, bold in _FONT_FILES.values():
            if (folder / regular).is_file() and (folder / bold).is_file():
                try:
                    pdfmetrics.registerFont(TTFont("CrmSans", str(folder / regular)))
                    pdfmetrics.registerFont(TTFont("CrmSans-Bold", str(folder / bold)))
                except Exception:  # a broken font file must not stop quotes; Helvetica will do
                    log.warning("cannot load the font in %s, using Helvetica", folder, exc_info=True)
                    continue
                return "CrmSans", "CrmSans-Bold"
    return "Helvetica", "Helvetica-Bold"


def _from_top(distance: float) -> float:
    return PAGE_HEIGHT - distance


def load_logo(company: CompanySettings, instance_dir: Path | None) -> ImageReader | None:
    if not company.logo_file.strip():
        return None
    path = Path(company.logo_file)
    if not path.is_absolute() and instance_dir is not None:
        path = instance_dir / path
    try:
        return ImageReader(str(path))
    except Exception:  # a missing or broken logo file prints the quote without it
        log.warning("cannot read the logo %s", path, exc_info=True)
        return None


def draw_letterhead(canvas: Canvas, company: CompanySettings, logo: ImageReader | None, *, regular: str,
                    bold: str, phone_label: str) -> None:
    """Our name, address and contact lines at the top of a letter's first page, the logo top right."""
    if logo is not None:  # top right, at most 60 × 20 mm, beside the name and contact lines
        canvas.drawImage(logo, PAGE_WIDTH - RIGHT - 60 * mm, _from_top(30 * mm), 60 * mm, 20 * mm,
                         preserveAspectRatio=True, anchor="ne", mask="auto")
    canvas.setFont(bold, 15)
    canvas.drawString(LEFT, _from_top(20 * mm), company.name)
    place = " ".join(part for part in (company.postcode, company.city) if part)
    phone = f"{phone_label} {company.phone}" if company.phone.strip() else ""
    canvas.setFont(regular, 8)
    canvas.setFillColor(colors.HexColor("#444444"))
    for index, parts in enumerate(([company.street, place], [phone, company.email, company.web])):
        canvas.drawString(LEFT, _from_top((25.5 + index * 3.6) * mm),
                          " · ".join(part.strip() for part in parts if part.strip()))
    canvas.setFillColor(colors.black)


def draw_window(canvas: Canvas, company: CompanySettings, address: Sequence[str], regular: str) -> None:
    """The address field of form B: our return address (Absenderzeile) underlined in its top zone, the
    recipient's address below it."""
    place = " ".join(part for part in (company.postcode, company.city) if part)
    back = " · ".join(part.strip() for part in (company.name, company.street, place) if part.strip())
    room = WINDOW_X + WINDOW_WIDTH - LEFT - 2 * mm
    if back:
        size = max(5.0, min(7.0, 7 * room / max(canvas.stringWidth(back, regular, 7), 1)))
        canvas.setFont(regular, size)
        y = _from_top(WINDOW_TOP + 5 * mm)
        canvas.drawString(LEFT, y, back)
        canvas.setLineWidth(0.3)
        canvas.line(LEFT, y - 1.2, LEFT + canvas.stringWidth(back, regular, size), y - 1.2)
    printed: list[tuple[str, float]] = []
    for line in address:
        # A long line is printed a little smaller, a very long one wrapped, never beyond the window.
        if canvas.stringWidth(line, regular, 10) <= room:
            printed.append((line, 10))
        elif canvas.stringWidth(line, regular, 8.5) <= room:
            printed.append((line, 8.5))
        else:
            printed += [(part, 10) for part in simpleSplit(line, regular, 10, room)]
    printed = printed[:9]
    leading = 4.2 * mm
    # Six lines fit the address zone; a longer address starts higher, in the zone for notes.
    top = max(ADDRESS_TOP - max(0, len(printed) - 6) * leading, WINDOW_TOP + 4 * mm)
    for index, (line, size) in enumerate(printed):
        canvas.setFont(regular, size)
        canvas.drawString(LEFT, _from_top(top + 3.5 * mm + index * leading), line)


def draw_info(canvas: Canvas, rows: Sequence[tuple[str, str]], regular: str, bold: str) -> None:
    """The information block beside the address field: label and value per row, the first value bold."""
    for index, (label, value) in enumerate(rows):
        y = _from_top(INFO_TOP + index * 4.6 * mm)
        canvas.setFont(regular, 8)
        canvas.drawString(INFO_X, y, label)
        canvas.setFont(bold if index == 0 else regular, 9)
        canvas.drawString(INFO_X + 27 * mm, y, value)


def draw_info_value(canvas: Canvas, row: int, value: str, regular: str) -> None:
    """A value of the information block written later (the page count)."""
    canvas.setFont(regular, 9)
    canvas.drawString(INFO_X + 27 * mm, _from_top(INFO_TOP + row * 4.6 * mm), value)


def draw_furniture(canvas: Canvas, company: CompanySettings, language: str, regular: str) -> None:
    """What every page of a letter carries: fold and punch marks, the footer rule and the business details."""
    canvas.setStrokeColor(colors.grey)
    canvas.setLineWidth(0.3)
    for distance in FOLD_MARKS:
        canvas.line(4 * mm, _from_top(distance), 9 * mm, _from_top(distance))
    canvas.line(4 * mm, PUNCH_MARK, 11 * mm, PUNCH_MARK)
    canvas.line(LEFT, FOOTER_TOP - 2 * mm, PAGE_WIDTH - RIGHT, FOOTER_TOP - 2 * mm)
    canvas.setFont(regular, 7)
    canvas.setFillColor(colors.HexColor("#444444"))
    for index, line in enumerate(business_details(company, language)):
        canvas.drawCentredString(PAGE_WIDTH / 2, FOOTER_TOP - 6 * mm - index * 3.3 * mm, line)
    canvas.setFillColor(colors.black)


def draw_later_header(canvas: Canvas, company: CompanySettings, title: str, *, regular: str, bold: str) -> None:
    """The head of a letter's second and later pages: our name, the document's title, a rule."""
    canvas.setFont(bold, 9)
    canvas.drawString(LEFT, _from_top(15 * mm), company.name)
    canvas.setFont(regular, 9)
    canvas.drawRightString(PAGE_WIDTH - RIGHT, _from_top(15 * mm), title)
    canvas.setStrokeColor(colors.grey)
    canvas.setLineWidth(0.3)
    canvas.line(LEFT, _from_top(17 * mm), PAGE_WIDTH - RIGHT, _from_top(17 * mm))


def draw_page_number(canvas: Canvas, label: str, regular: str) -> None:
    canvas.setFont(regular, 8)
    canvas.drawRightString(PAGE_WIDTH - RIGHT, FOOTER_TOP, label)


class _Page:
    """What is drawn at fixed positions on every page (the canvas, not the flow)."""

    def __init__(self, document: SalesDocument, company: CompanySettings, logo: ImageReader | None) -> None:
        self.document, self.company, self.logo = document, company, logo
        self.language = language_of(document.language)
        self.words = texts(self.language)
        self.regular, self.bold = fonts()
        self.title = self.words[document.kind]
        if document.number:
            self.title = f"{self.title} {document.number}"
        if document.is_draft:
            self.title = f"{self.title} – {self.words['draft']}"
        self.info = self._info_rows()

    def _info_rows(self) -> list[tuple[str, str]]:
        document, words = self.document, self.words
        rows = [(words["quote_no" if document.kind == "quote" else "order_no"], document.number or words["draft"]),
                (words["date"], format_date(document.date, self.language))]
        if document.valid_until is not None:
            rows.append((words["valid_until"], format_date(document.valid_until, self.language)))
        if document.reference:
            rows.append((words["reference"], f"{words['quote']} {document.reference}"))
        if document.customer_number:
            rows.append((words["customer_no"], document.customer_number))
        return [*rows, (words["page"], "")]  # the page's value is written when the page count is known

    def first(self, canvas: Canvas, _doc: Any) -> None:
        draw_letterhead(canvas, self.company, self.logo, regular=self.regular, bold=self.bold,
                        phone_label=self.words["phone"])
        draw_window(canvas, self.company, self.document.address, self.regular)
        draw_info(canvas, self.info, self.regular, self.bold)
        self._common(canvas)

    def later(self, canvas: Canvas, _doc: Any) -> None:
        draw_later_header(canvas, self.company, self.title, regular=self.regular, bold=self.bold)
        self._common(canvas)

    def _common(self, canvas: Canvas) -> None:
        draw_furniture(canvas, self.company, self.language, self.regular)
        if self.document.is_draft:
            canvas.saveState()
            canvas.setFillColor(colors.Color(0.85, 0.85, 0.85, alpha=0.5))
            canvas.setFont(self.bold, 90)
            canvas.translate(PAGE_WIDTH / 2, PAGE_HEIGHT / 2 - 20 * mm)
            canvas.rotate(40)
            canvas.drawCentredString(0, 0, self.words["draft"])
            canvas.restoreState()

    def numbers(self, canvas: Canvas, page: int, pages: int) -> None:
        """Page numbers, drawn when all pages are laid out."""
        draw_page_number(canvas, f"{self.words['page']} {page} {self.words['of']} {pages}", self.regular)
        if page == 1:
            draw_info_value(canvas, len(self.info) - 1, f"{page} {self.words['of']} {pages}", self.regular)


class _NumberedCanvas(Canvas):
    """Keeps each page's drawing until ``save`` so that every page can say how many there are."""

    def __init__(self, *args: Any, page: _Page, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._page = page
        self._kept: list[dict[str, Any]] = []

    def showPage(self) -> None:
        self._kept.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        for number, state in enumerate(self._kept, start=1):
            self.__dict__.update(state)
            self._page.numbers(self, number, len(self._kept))
            super().showPage()
        super().save()


def styles_of(regular: str, bold: str) -> dict[str, ParagraphStyle]:
    body = ParagraphStyle("body", fontName=regular, fontSize=10, leading=13.5)
    return {
        "body": body,
        "subject": ParagraphStyle("subject", parent=body, fontName=bold, fontSize=12, leading=15),
        "small": ParagraphStyle("small", parent=body, fontSize=8.5, leading=11),
    }


def paragraph_text(value: str) -> str:
    """Plain text for a Paragraph: its markup escaped, its line breaks kept."""
    return "<br/>".join(escape(line) for line in value.splitlines())


def _story(document: SalesDocument, company: CompanySettings, page: _Page) -> list[Flowable]:
    styles = styles_of(page.regular, page.bold)
    words = page.words
    story: list[Flowable] = [NextPageTemplate("later"), Paragraph(paragraph_text(page.title), styles["subject"]),
                             Spacer(1, 6 * mm), Paragraph(paragraph_text(document.greeting), styles["body"])]
    if document.intro:
        story += [Spacer(1, 3 * mm), Paragraph(paragraph_text(document.intro), styles["body"])]
    story += [Spacer(1, 5 * mm), lines_table(document, page.regular, page.bold), Spacer(1, 4 * mm)]
    terms = [document.terms] if document.terms else []
    days = company.payment_terms_days
    terms.append(words["payment"].format(days=days) if days > 0 else words["payment_now"])
    if document.kind == "quote" and document.valid_until is not None:
        terms.append(words["validity"].format(date=format_date(document.valid_until, page.language)))
    closing: list[Flowable] = [totals_table(document, page.regular, page.bold), Spacer(1, 6 * mm)]
    closing += [Paragraph(paragraph_text(term), styles["small"]) for term in terms]
    closing += [Spacer(1, 6 * mm), Paragraph(paragraph_text(words["closing"]), styles["body"])]
    if company.name.strip():
        closing += [Spacer(1, 2 * mm), Paragraph(paragraph_text(company.name), styles["body"])]
    story.append(KeepTogether(closing))
    return story


def render(document: SalesDocument, company: CompanySettings, instance_dir: Path | None = None) -> bytes:
    """The document as PDF bytes; the same input gives the same bytes."""
    page = _Page(document, company, load_logo(company, instance_dir))
    out = io.BytesIO()
    title = page.title
    doc = BaseDocTemplate(out, pagesize=A4, leftMargin=LEFT, rightMargin=RIGHT, topMargin=20 * mm,
                          bottomMargin=FOOTER_TOP, title=title, author=company.name, creator="CRM Inbox",
                          invariant=1)
    body_height = PAGE_HEIGHT - BODY_TOP - FOOTER_TOP - 2 * mm
    first = Frame(LEFT, FOOTER_TOP + 2 * mm, WIDTH, body_height, id="first", leftPadding=0, rightPadding=0,
                  topPadding=0, bottomPadding=0)
    later = Frame(LEFT, FOOTER_TOP + 2 * mm, WIDTH, PAGE_HEIGHT - 25 * mm - FOOTER_TOP - 2 * mm, id="later",
                  leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
    doc.addPageTemplates([PageTemplate(id="first", frames=[first], onPage=page.first),
                          PageTemplate(id="later", frames=[later], onPage=page.later)])
    doc.build(_story(document, company, page), canvasmaker=functools.partial(_NumberedCanvas, page=page))
    return out.getvalue()
