"""vCard 2.1/3.0/4.0 files as rows with fixed column names, read with vobject after a repair pass.

vobject garbles what Outlook writes: a QUOTED-PRINTABLE value is decoded as UTF-8 whatever its CHARSET
(Windows-1252 umlauts fail), and an unescaped comma in a text value (2.1 has no escaping; some 3.0 exporters
forget it) cuts the value there. So the text is unfolded first (soft "=" line breaks of QP included), QP values
are decoded with their charset, and commas are escaped, before vobject parses the cards.
"""

from __future__ import annotations

import quopri
import re
from typing import Any

from crm_inbox.errors import ValidationError

# The columns, in this order (the mapping page shows them as headers).
VCARD_HEADERS = ("FN", "N:prefix", "N:given", "N:additional", "N:family", "N:suffix", "ORG", "ORG:unit", "TITLE",
                 "ROLE", "EMAIL:work", "EMAIL:home", "EMAIL:other", "TEL:work", "TEL:cell", "TEL:home", "TEL:fax",
                 "TEL:other", "ADR:street", "ADR:postcode", "ADR:city", "ADR:region", "ADR:country", "URL",
                 "CATEGORIES", "NOTE", "BDAY")
_SKIPPED = {"PHOTO", "LOGO", "SOUND", "KEY"}  # large base64 blobs nobody maps
_LIST_VALUED = {"CATEGORIES", "NICKNAME"}  # commas separate values here


def read_vcards(text: str) -> list[list[str]]:
    import vobject

    rows: list[list[str]] = []
    try:
        for card in vobject.readComponents(repair(text), ignoreUnreadable=True):
            if card.name.upper() == "VCARD":
                rows.append(_card_row(card))
    except Exception as exc:  # vobject raises ParseError and assorted errors for broken files
        raise ValidationError("file", f"the vCard file cannot be read: {str(exc)[:200]}") from None
    if not rows:
        raise ValidationError("file", "the file holds no vCard")
    return rows


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    for physical in re.split(r"\r\n|\r|\n", text):
        if lines and physical[:1] in (" ", "\t"):
            lines[-1] += physical[1:]
        elif lines and lines[-1].endswith("=") and _is_qp(lines[-1]):
            lines[-1] = lines[-1][:-1] + physical  # a quoted-printable soft line break
        elif physical.strip():
            lines.append(physical)
    return lines


def _is_qp(line: str) -> bool:
    head = line.split(":", 1)[0].upper()
    return "QUOTED-PRINTABLE" in head


def _escape_commas(value: str) -> str:
    return re.sub(r"(?<!\\),", r"\\,", value)


def repair(text: str) -> str:
    out: list[str] = []
    for line in _logical_lines(text):
        head, colon, value = line.partition(":")
        if not colon:
            continue
        name, *params = head.split(";")
        prop = name.rpartition(".")[2].upper()
        if prop in _SKIPPED:
            continue
        if _is_qp(line):
            charset = next((p.split("=", 1)[1] for p in params if p.upper().startswith("CHARSET=")), None)
            params = [p for p in params if p.upper() not in ("ENCODING=QUOTED-PRINTABLE", "QUOTED-PRINTABLE")
                      and not p.upper().startswith("CHARSET=")]
            value = _decode_qp(value, charset)
            value = value.replace("\\", "\\\\").replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
        elif any(p.upper().startswith("CHARSET=") for p in params):
            params = [p for p in params if not p.upper().startswith("CHARSET=")]  # the text is decoded already
        if prop not in _LIST_VALUED:
            value = _escape_commas(value)
        out.append(";".join([name, *params]) + ":" + value)
    return "\r\n".join(out) + "\r\n"


def _decode_qp(value: str, charset: str | None) -> str:
    raw = quopri.decodestring(value.encode("latin-1", "replace"))
    for encoding in (charset, "utf-8", "cp1252"):
        if not encoding:
            continue
        try:
            return raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("latin-1")


def _types(line: Any) -> set[str]:
    """TYPE values of a property in any version: 2.1 ``TEL;WORK;VOICE``, 3.0 ``TYPE=WORK,VOICE``,
    4.0 ``TYPE="work,voice"``."""
    out = {p.lower() for p in getattr(line, "singletonparams", [])}
    for value in line.params.get("TYPE", []):
        out.update(v.strip().strip('"').lower() for v in value.split(","))
    return out


def _put(values: dict[str, str], key: str, value: str) -> None:
    value = " ".join(value.split()) if key != "NOTE" else value.strip()
    if value:
        values[key] = f"{values[key]}; {value}" if values.get(key) else value


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value if v)
    return str(value) if value is not None else ""




def _card_row(card: Any) -> list[str]:
    values: dict[str, str] = {}
    for line in card.lines():
        name, value, types = line.name.upper(), line.value, _types(line)
        if name == "FN":
            _put(values, "FN", _text(value))
        elif name == "N" and hasattr(value, "family"):
            for part in ("prefix", "given", "additional", "family", "suffix"):
                _put(values, f"N:{part}", _text(getattr(value, part)))
        elif name == "ORG":
            parts = value if isinstance(value, list) else [value]
            _put(values, "ORG", _text(parts[0] if parts else ""))
            _put(values, "ORG:unit", _text(parts[1:]))
        elif name in ("TITLE", "ROLE", "URL", "NOTE", "BDAY"):
            _put(values, name, _text(value))
        elif name == "CATEGORIES":
            _put(values, "CATEGORIES", _text(value))
        elif name == "EMAIL":
            kind = "work" if "work" in types else "home" if "home" in types else "other"
            _put(values, f"EMAIL:{kind}", _text(value))
        elif name == "TEL":
            kind = ("fax" if "fax" in types else "cell" if types & {"cell", "mobile", "iphone"}
                    else "work" if "work" in types else "home" if "home" in types else "other")
            _put(values, f"TEL:{kind}", _text(value).removeprefix("tel:"))  # 4.0: VALUE=uri
        elif name == "ADR" and hasattr(value, "street") and "ADR:street" not in values:
            # The first address only; a work address listed first is what Outlook and Apple put first.
            _put(values, "ADR:street", _text(value.street))
            _put(values, "ADR:postcode", _text(value.code))
            _put(values, "ADR:city", _text(value.city))
            _put(values, "ADR:region", _text(value.region))
            _put(values, "ADR:country", _text(value.country))
    return [values.get(h, "") for h in VCARD_HEADERS]
