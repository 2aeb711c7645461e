"""Bytes → text for mail, whatever the sender's software declared (or forgot to declare).

The order is always the same: the declared charset (or the superset senders really used under that label),
then UTF-8, then what a detector (charset-normalizer) reads from the bytes, and only then cp1252 with
replacement characters. ISO-2022-JP is read with the vendor extensions Japanese mail really contains
(NEC and IBM characters such as ①, as Windows' cp50220 writes them), which Python's codecs refuse.
"""

from __future__ import annotations

import codecs
import itertools
import re
import unicodedata
from collections.abc import Iterable

from charset_normalizer import from_bytes

# Labels mail gets wrong in practice, mapped to the superset that senders really used.
_SUPERSETS = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030", "euc-cn": "gb18030",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "iso8859-1": "cp1252",
    "us-ascii": "utf-8", "ascii": "utf-8", "ks_c_5601-1987": "cp949", "euc-kr": "cp949",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "iso-8859-9": "cp1254",
    "big5": "big5hkscs", "unknown-8bit": "utf-8", "x-unknown": "utf-8", "default": "utf-8", "utf8": "utf-8",
    "windows-874": "cp874", "tis-620": "cp874",
}
# ISO-2022-JP and the Windows variants that add NEC/IBM characters and half-width katakana.
_ISO2022JP = frozenset({"iso-2022-jp", "iso2022jp", "iso2022_jp", "csiso2022jp", "iso-2022-jp-ms", "iso-2022-jp-ext",
                        "iso2022_jp_ext", "cp50220", "cp50221", "cp50222", "x-iso-2022-jp", "iso-2022-jp-1"})
# Text codecs that are not charsets: a declared "unicode-escape" must not rewrite the text.
_NOT_CHARSETS = frozenset({"unicode_escape", "raw_unicode_escape", "punycode", "idna", "undefined"})
# What a detector may answer: the charsets mail is really written in besides UTF-8 (tried before it).
_SINGLE_BYTE = ("cp1252", "cp1250", "cp1251", "koi8_r", "koi8_u", "iso8859_5", "cp1253", "iso8859_7", "cp1254",
                "cp1255", "cp1256", "cp1257", "cp1258", "cp874", "iso8859_2", "iso8859_15")
_MULTI_BYTE = ("gb18030", "big5hkscs", "cp932", "euc_jp", "cp949")
_8BIT_RUN = re.compile(rb"[\x80-\xff]{2}")
_SCORE_BYTES = 4096
_WORD = re.compile(r"\w+")
# Alphabets that share words in real writing (Japanese mixes kana, kanji and Latin; Korean today writes Hangul
# without Hanja inside a word).
_SCRIPTS_TOGETHER = (frozenset({"HIRAGANA", "KATAKANA", "CJK", "LATIN", "FULLWIDTH"}),
                     frozenset({"HANGUL", "LATIN", "FULLWIDTH"}))
_ESCAPES_2022 = re.compile(rb"\x1b(?:\$[@B(]|\([BJI])")
DETECT_BYTES = 64 * 1024  # enough text for the detector; more only costs time


def _name(charset: str) -> str:
    name = charset.strip().strip("\"'").split("*", 1)[0].strip().lower()
    return _SUPERSETS.get(name, name)


def decode_strict(data: bytes, charset: str) -> str | None:
    """``data`` read in ``charset`` (or its superset), or None when it is unknown or the bytes are not valid in it."""
    name = _name(charset)
    if not name:
        return None
    if name in _ISO2022JP:
        return iso2022jp_ms(data)
    try:
        if codecs.lookup(name).name in _NOT_CHARSETS:
            return None
        return data.decode(name)
    except (LookupError, UnicodeError, ValueError, TypeError):
        return None


def detected(sample: bytes) -> list[str]:
    """Charsets for ``sample`` (not valid UTF-8), most plausible first; none for plain ASCII.

    charset-normalizer proposes, restricted to charsets mail is really written in (on a short header it
    otherwise prefers an exotic code page). On a few bytes several proposals decode without error, so they
    are ranked by how much their text looks like writing (``implausibility``), then cp1252 (what Western
    mail software wrote), then the detector's own order. Text whose 8-bit bytes all stand alone between
    ASCII ("Ups R\\xe9mi") is single-byte: no multi-byte charset may swallow a letter.
    """
    if sample.isascii():
        return []
    sample = sample[:DETECT_BYTES]
    candidates = _SINGLE_BYTE if not _8BIT_RUN.search(sample) else _SINGLE_BYTE + _MULTI_BYTE
    try:
        matches = list(from_bytes(sample, cp_isolation=list(candidates)))
    except Exception:  # a detector bug must not lose a message; the caller falls back
        return []
    # The detector's proposals first, in its order; then every other candidate the bytes are valid in (on a
    # short sample the detector drops a single-byte charset as soon as a multi-byte one fits).
    proposed = [n for m in matches for n in dict.fromkeys([m.encoding, *m.could_be_from_charset]) if n in candidates]
    head = sample[:_SCORE_BYTES]
    ranked: list[tuple[int, int, int, str]] = []
    for rank, name in enumerate(dict.fromkeys([*proposed, *candidates])):
        try:
            text = head.decode(name)
        except UnicodeDecodeError:
            if name not in proposed:
                continue
            text = head.decode(name, errors="replace")  # the sample may end inside a character
        ranked.append((implausibility(text), 0 if name == "cp1252" else 1, rank, name))
    return [name for *_, name in sorted(ranked)]


def implausibility(text: str) -> int:
    """How little ``text`` looks like human writing: rare or symbol characters, words that mix alphabets
    (Latin with Cyrillic, Hangul with kana) and Latin words made (nearly) only of accented letters, which a wrong
    charset produces and no writer does."""
    penalty = 0
    for ch in text:
        if ch < "\x80":
            continue
        category = unicodedata.category(ch)
        if category in {"Lu", "Ll", "Lt", "Lo"}:
            penalty += _rare_letter(ch)
        elif category == "Sc":
            penalty += 1
        elif category[0] not in "PZ":  # symbols, modifier letters, combining marks, controls
            penalty += 2
    for word in _WORD.findall(text):
        if word.isascii():
            continue
        scripts = {_script(ch) for ch in word if ch.isalpha()}
        if len(scripts) > 1 and not any(scripts <= group for group in _SCRIPTS_TOGETHER):
            penalty += 2
        elif scripts == {"LATIN"} and len(word) >= 4 and sum(ch.isascii() for ch in word) <= 1:
            penalty += 1  # "Èâàí": Cyrillic or Greek read as Latin-1; real Latin words are mostly ASCII letters
        if any(a.islower() and b.isupper() for a, b in itertools.pairwise(word)):
            penalty += 1  # "РспуцпсЬ", "fĂĽr": a capital inside a word, after small letters
    return penalty


def _script(ch: str) -> str:
    try:
        return unicodedata.name(ch).split(" ", 1)[0]
    except ValueError:
        return "?"


def _rare_letter(ch: str) -> int:
    """1 for a Han character or Hangul syllable outside the everyday sets (GB2312, Big5 and JIS level 1,
    KS X 1001): what a wrong multi-byte charset turns text into. 0 for other letters."""
    code = ord(ch)
    if 0x3400 <= code <= 0x9FFF:
        for codec, low, high in (("gb2312", 0xB0, 0xD7), ("big5", 0xA4, 0xC6), ("cp932", 0x88, 0x9F)):
            try:
                if low <= ch.encode(codec)[0] <= high:
                    return 0
            except UnicodeEncodeError:
                continue
        return 1
    if 0x3130 <= code <= 0x318F:  # Hangul letters on their own, not syllables: nobody writes words of them
        return 2
    if 0xAC00 <= code <= 0xD7A3:
        try:
            ch.encode("euc_kr")
            return 0
        except UnicodeEncodeError:
            return 1
    return 0


def decode(data: bytes, declared: Iterable[str | None] = (), sample: bytes | None = None) -> str:
    """Text from ``data``: declared charsets, then UTF-8 (also UTF-8 with a few damaged bytes), then detection
    over ``sample`` (default: ``data``) and finally cp1252 with replacement characters. Never raises."""
    names = [c for c in declared if c]
    if data.isascii():
        if _ESCAPES_2022.search(data) and not any(_name(n) == "utf-7" for n in names):
            names.insert(0, "iso-2022-jp")  # raw ISO-2022-JP is 7-bit: UTF-8 would keep the escapes as text
        elif not names:
            return data.decode("ascii")
    for name in (*names, "utf-8"):
        text = decode_strict(data, name)
        if text is not None:
            return text
    if _nearly_utf8(data):
        return data.decode("utf-8", errors="replace")
    for name in detected(data if sample is None else sample):
        text = decode_strict(data, name)
        if text is not None:
            return text
    return data.decode("cp1252", errors="replace")


_UTF8_SEQUENCE = re.compile(
    rb"([\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})")


def _nearly_utf8(data: bytes) -> bool:
    """UTF-8 text with a few damaged bytes (a cut or a corrupted character): at least 40 8-bit bytes, and at
    most one in 50 outside a well-formed sequence. Legacy CJK text has far more (most of its byte pairs are
    no UTF-8), so this never takes one for UTF-8."""
    high = sum(1 for b in data if b >= 0x80)
    if high < 40:
        return False
    valid = sum(len(m) for m in _UTF8_SEQUENCE.findall(data))
    return high - valid <= high // 50


def decode_header(data: bytes, declared: Iterable[str | None] = (), sample: bytes | None = None) -> str:
    """A raw 8-bit header value that is not UTF-8: as a whole (``decode``), or, when a header was written by
    two programs, its well-formed UTF-8 sequences as UTF-8 and the rest in a legacy charset
    ("f\xc3\xbcr \xe4\xf6\xfc"). The more plausible reading wins: in legacy text a byte pair that is
    well-formed UTF-8 by chance reads as a letter of another alphabet inside a word ("张ΰ"), which costs the
    mixed reading; a tie goes to the mixed one (UTF-8 read as Latin-2 still looks like letters: "fĂĽr")."""
    whole = decode(data, declared, sample)
    pieces = _UTF8_SEQUENCE.split(data)
    if len(pieces) == 1:
        return whole
    rest = b"\n".join(pieces[0::2])
    names = [c for c in declared if c]
    chosen = next((n for n in (*names, *detected(rest)) if _name(n) != "utf-8" and decode_strict(rest, n) is not None),
                  None)
    if chosen is None:
        return whole
    mixed = "".join(piece.decode("utf-8") if i % 2 else (decode_strict(piece, chosen) or "")
                    for i, piece in enumerate(pieces))
    return mixed if implausibility(mixed) <= implausibility(whole) else whole


def _jis_to_sjis(j1: int, j2: int) -> bytes:
    """One JIS X 0208 code (row/cell as bytes 0x21–0x7E) in Shift_JIS, where cp932 knows the vendor rows."""
    s1 = (j1 + 1) // 2 + 0x70
    if s1 >= 0xA0:
        s1 += 0x40
    s2 = j2 + 0x1F + (1 if j2 >= 0x60 else 0) if j1 % 2 else j2 + 0x7E
    return bytes((s1, s2))


def iso2022jp_ms(data: bytes) -> str | None:
    """ISO-2022-JP as Windows writes it (cp50220/50221/50222): JIS X 0208 with NEC row 13 and the IBM rows
    89–92, JIS X 0212, half-width katakana by ESC ( I or SO/SI. None when the bytes are not ISO-2022-JP."""
    out: list[str] = []
    mode = "ascii"
    shifted = False
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b >= 0x80:
            return None
        if b == 0x1B:
            seq = data[i + 1:i + 4]
            for prefix, new_mode in ((b"$(D", "0212"), (b"$(O", "0213"), (b"$(Q", "0213"), (b"$(P", "0213-2"),
                                     (b"$@", "0208"), (b"$B", "0208"), (b"$(B", "0208"), (b"$(@", "0208"),
                                     (b"(B", "ascii"), (b"(J", "ascii"), (b"(H", "ascii"), (b"(I", "kana")):
                if seq.startswith(prefix):
                    mode = new_mode
                    i += 1 + len(prefix)
                    break
            else:
                if seq.startswith(b"&@"):  # JIS C 6226 revision marker before ESC $ B: nothing to switch
                    i += 3
                    continue
                return None
            continue
        if b == 0x0E:
            shifted = True
            i += 1
            continue
        if b == 0x0F:
            shifted = False
            i += 1
            continue
        if b in (0x0A, 0x0D):  # a line end goes back to ASCII, whatever a sloppy encoder forgot to switch
            mode, shifted = "ascii", False
            out.append(chr(b))
            i += 1
            continue
        if shifted or mode == "kana":
            out.append(chr(0xFF61 + b - 0x21) if 0x21 <= b <= 0x5F else chr(b))
            i += 1
            continue
        if mode == "ascii":
            out.append(chr(b))
            i += 1
            continue
        if i + 1 >= n or not (0x21 <= b <= 0x7E and 0x21 <= data[i + 1] <= 0x7E):
            return None
        j1, j2 = b, data[i + 1]
        i += 2
        try:
            if mode == "0208":
                out.append(_jis_to_sjis(j1, j2).decode("cp932"))
            elif mode == "0212":
                out.append(bytes((0x8F, j1 | 0x80, j2 | 0x80)).decode("euc_jp"))
            else:
                plane = b"" if mode == "0213" else b"\x8f"
                out.append((plane + bytes((j1 | 0x80, j2 | 0x80))).decode("euc_jis_2004"))
        except UnicodeDecodeError:
            out.append("\ufffd")  # one unknown character (a user-defined one), not the whole text
    return "".join(out)
