"""Reading an address book file into one table of text: CSV (any delimiter and encoding people export), XLSX
and vCard 2.1/3.0/4.0 (vCards become rows with fixed column names, so one mapping fits every vCard file)."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from crm_inbox.errors import ValidationError
from crm_inbox.imports.vcards import VCARD_HEADERS, read_vcards

CSV_DELIMITERS = (";", "\t", ",", "|")  # in order of preference on a tie (German Excel writes ";")
MAX_COLUMNS = 500


@dataclass(frozen=True)
class Table:
    file_format: str  # "csv" | "xlsx" | "vcard"
    headers: list[str]  # column names as in the file (made unique); vCard: VCARD_HEADERS
    rows: list[list[str]]  # data rows, each as long as headers ("" for empty cells), in file order
    encoding: str | None = None  # csv and vCard: the detected encoding
    delimiter: str | None = None


def read_table(filename: str, data: bytes) -> Table:
    """The file as a table; ValidationError("file", …) for a file it cannot read."""
    name = filename.lower()
    if data[:4] == b"PK\x03\x04" or name.endswith((".xlsx", ".xlsm")):
        return _read_xlsx(data)
    if name.endswith((".xls",)) and data[:4] == b"\xd0\xcf\x11\xe0":
        raise ValidationError("file", "old Excel files (.xls) cannot be read: save it as .xlsx or CSV")
    text, encoding = decode(data)
    if name.endswith((".vcf", ".vcard")) or text.lstrip()[:11].upper() == "BEGIN:VCARD":
        return Table(file_format="vcard", headers=list(VCARD_HEADERS), rows=read_vcards(text), encoding=encoding)
    return _read_csv(text, encoding)


# --- text files ---

# The single-byte code pages German and English offices really export, in order of preference on a tie:
# Windows (Excel, Outlook), old DOS programs, old Mac Excel. Never a Baltic, Cyrillic or other one: on a short
# file a general detector names any of them (it read "Müller" in cp1252 as cp775 "M³ller").
SINGLE_BYTE = ("cp1252", "cp850", "mac_roman")
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_VOWELS = frozenset("aeiouyäöüAEIOUYÄÖÜ")


def decode(data: bytes) -> tuple[str, str]:
    """The text and the encoding it was read with: a BOM decides, then UTF-16 without BOM (NUL bytes in
    every other place), then UTF-8 (the whole file valid), else the Western single-byte code page whose
    reading makes German words (``single_byte``)."""
    if not data:
        raise ValidationError("file", "the file is empty")
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"),
                          (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return _strict(data, encoding), encoding
    # Before UTF-8: UTF-16 of plain ASCII letters is valid UTF-8 too (with a NUL after every letter).
    sample = data[:4000]
    utf16 = _utf16_without_bom(sample)
    if utf16:
        return _strict(data, utf16), utf16
    if sample.count(0) * 100 > len(sample):  # a stray NUL in a text export is read; a binary file is not
        raise ValidationError("file", "the file is not a text file (CSV or vCard)")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    encoding = single_byte(data)
    return data.decode(encoding), encoding


def _utf16_without_bom(sample: bytes) -> str | None:
    """utf-16-le/-be when the NUL bytes sit (nearly) all in odd/even places and fill at least a third of
    them, as Latin text in UTF-16 has; None else (a binary file has NULs in both)."""
    if len(sample) < 4:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = len(sample) // 2
    if odd * 3 >= half and even * 20 <= odd:
        return "utf-16-le"
    if even * 3 >= half and odd * 20 <= even:
        return "utf-16-be"
    return None


def single_byte(data: bytes) -> str:
    """cp1252 unless another of ``SINGLE_BYTE`` reads more German letters where German puts them (or the
    file has bytes cp1252 leaves undefined, which cp850 uses for "ü" and mac_roman for "Å")."""
    scores: dict[str, int] = {}
    for encoding in SINGLE_BYTE:
        if encoding == "cp1252" and _CP1252_UNDEFINED.search(data):
            continue
        scores[encoding] = letter_score(data.decode(encoding))
    # max() keeps the first of equal scores: the order of SINGLE_BYTE is the tie-break.
    return max(scores, key=lambda encoding: scores[encoding])


def letter_score(text: str) -> int:
    """How much the non-ASCII characters of ``text`` read as letters of words. A wrong code page turns umlauts
    into signs ("M³ller", "Stra§e"), into quotes, or into letters in places no writer puts them ("FirmaÖ").

    +2 a German letter where German writes it: ä ö ü inside or opening a word, ß after a vowel, Ä Ö Ü
       opening a word or in a word of capitals;
    -1 a capital right after a small letter or a small letter right before a capital, and a sign (not
       punctuation: "O’Brien" is fine) between two letters;
     0 anything else: other letters too, since one code page's "é" or "’" is another's letter as well."""
    score = 0
    last = len(text) - 1
    for match in _NON_ASCII.finditer(text):
        i = match.start()
        ch = text[i]
        before = text[i - 1] if i > 0 else " "
        after = text[i + 1] if i < last else " "
        if not ch.isalpha():
            between = before.isalpha() and after.isalpha()
            score -= 1 if between and unicodedata.category(ch)[0] not in "PZ" else 0
        elif (ch.isupper() and before.islower()) or (ch.islower() and after.isupper()):
            score -= 1
        elif _german_place(ch, before, after):
            score += 2
    return score


def _german_place(ch: str, before: str, after: str) -> bool:
    if ch in "äöü":  # "Müller", "über"
        return after.islower() or (before.isalpha() and after.isalpha())
    if ch == "ß":
        return before in _VOWELS
    if ch in "ÄÖÜ":
        word_start = not before.isalpha() and after.islower()
        capitals = not before.islower() and not after.islower() and (before.isupper() or after.isupper())
        return word_start or capitals
    return False


def _strict(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise ValidationError("file", f"the file is not readable as {encoding} text") from None


def _delimiter(text: str) -> str:
    """The delimiter that splits the first lines into the same number of columns (more than one), most often."""
    lines = text[:64_000].splitlines()[:50]
    best, best_score = CSV_DELIMITERS[0], (-1, 0)
    for delimiter in CSV_DELIMITERS:
        try:
            widths = [len(r) for r in csv.reader(lines, delimiter=delimiter) if any(c.strip() for c in r)]
        except csv.Error:
            continue
        if not widths or widths[0] < 2:
            continue
        agreeing = sum(1 for w in widths if w == widths[0])
        score = (agreeing, widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _read_csv(text: str, encoding: str) -> Table:
    first, _, rest = text.partition("\n")
    if first.strip().lower().startswith("sep=") and len(first.strip()) == 5:  # Excel's "sep=;" hint line
        delimiter, text = first.strip()[4], rest
    else:
        delimiter = _delimiter(text)
    try:
        records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]
    except csv.Error as exc:
        raise ValidationError("file", f"the CSV file cannot be read: {exc}") from None
    return _table("csv", records, encoding=encoding, delimiter=delimiter)


def _table(file_format: str, records: list[list[str]], **extra: Any) -> Table:
    """Headers from the first non-empty record; rows padded or cut to the headers' width; trailing empty
    rows dropped (empty rows inside stay, so row numbers match the file)."""
    while records and not any(c.strip() for c in records[0]):
        records.pop(0)
    while records and not any(c.strip() for c in records[-1]):
        records.pop()
    if not records:
        raise ValidationError("file", "the file holds no table (no header row)")
    raw_headers = [h.strip().lstrip("\ufeff") for h in records[0]]
    while raw_headers and not raw_headers[-1]:
        raw_headers.pop()
    if len(raw_headers) > MAX_COLUMNS:
        raise ValidationError("file", f"the file has more than {MAX_COLUMNS} columns")
    headers = unique_headers(raw_headers)
    if len(headers) < 1:
        raise ValidationError("file", "the header row is empty")
    width = len(headers)
    rows = [(r + [""] * (width - len(r)))[:width] if len(r) != width else r for r in records[1:]]
    return Table(file_format=file_format, headers=headers, rows=rows, **extra)


def unique_headers(raw: list[str]) -> list[str]:
    """Empty headers become "Column 3", a repeated one "Name (2)": the mapping is keyed by header."""
    out: list[str] = []
    seen: Counter[str] = Counter()
    for i, header in enumerate(raw, start=1):
        header = " ".join(header.split()) or f"Column {i}"
        seen[header] += 1
        out.append(header if seen[header] == 1 else f"{header} ({seen[header]})")
    return out


# --- Excel ---

def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e17:
        return str(int(value))  # a phone number or postcode typed as a number: no ".0"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value).strip()


def _read_xlsx(data: bytes) -> Table:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ValidationError("file", f"the Excel file cannot be read ({exc.__class__.__name__})") from None
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            raise ValidationError("file", "the Excel file has no worksheet")
        records = [[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()
    return _table("xlsx", records)
