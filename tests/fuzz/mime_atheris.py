"""libFuzzer (atheris) target for the MIME parser: any bytes either parse or raise ``MailParseError``.

Run by ``tests/test_fuzz_atheris.py`` with a bounded number of runs; by hand for a longer hunt:
``python tests/fuzz/mime_atheris.py -max_total_time=600 CORPUS_DIR``.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from crm_inbox.mail.forwarded import find_inline_forward
    from crm_inbox.mail.parse import Limits, MailParseError, parse_mail

LIMITS = Limits(max_nesting_depth=8, max_parts=50, max_decoded_bytes=200_000)


def fuzz_one(data: bytes) -> None:
    try:
        parsed = parse_mail(data, LIMITS)
    except MailParseError:
        return
    find_inline_forward(parsed.text)
    for attachment in parsed.attachments:
        if "/" in attachment.filename or "\x00" in attachment.filename:
            raise AssertionError(f"unsafe attachment name {attachment.filename!r}")


def main() -> None:
    sys.setrecursionlimit(5000)
    atheris.Setup(sys.argv, fuzz_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
