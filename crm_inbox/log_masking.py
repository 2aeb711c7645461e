"""Secrets in URLs never reach the log.

Phone systems and calendar apps authenticate by a secret in the URL path (``/api/v1/cti/<token>``, the
calendar feed ``/calendar/<secret>/reminders.ics``, the phone books ``/phonebook/<secret>/…``, a campaign mail's
opt-out link ``/unsubscribe/<token>`` and the double opt-in link ``/consent/confirm/<token>``) or the query
(``/api/v1/lookup?token=``), and Flask, werkzeug and waitress write request paths into their log lines
("Exception on /api/v1/cti/… [POST]").

The masking happens where a record is made (a log record factory), not in a handler's filter: a filter on a
logger does not see records that propagate from its children, and one on a handler misses every handler added
later (a syslog handler, pytest's caplog). The message, its arguments, the exception text and the stack are
masked alike.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

# The secret segment of each secret-in-path route (web/webhooks.py, web/feeds.py), whatever prefix a
# reverse proxy adds; 3CX's token is followed by /journal or /lookup (its /3cx/template.xml is no secret).
_PATH_SECRET = re.compile(
    r"""(/(?:cti|sipgate|placetel|twilio|calendar|phonebook|unsubscribe|consent/confirm)/"""
    r"""|/3cx/(?=[^/\s?#"'<>]+/))[^/\s?#"'<>]+""")
_QUERY_SECRET = re.compile(r"""([?&;](?:token|secret|password|passwd|key)=)[^&;\s#"'<>]+""", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``text`` with the secrets of webhook and feed URLs replaced by ``***``."""
    if "/" not in text and "=" not in text:  # the common case: nothing that could be a URL
        return text
    return _QUERY_SECRET.sub(rf"\1{MASK}", _PATH_SECRET.sub(rf"\1{MASK}", text))


def mask_record(record: logging.LogRecord) -> None:
    """Mask ``record`` in place: its formatted message (then without args), exception text and stack."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: the handler reports it as it always did
        return
    masked = mask_secrets(message)
    if masked != message:
        record.msg, record.args = masked, ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        # Formatted once here, masked; formatters use exc_text as it is.
        record.exc_text = mask_secrets(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = mask_secrets(record.exc_text)
    if record.stack_info:
        record.stack_info = mask_secrets(record.stack_info)


def install() -> None:
    """Mask every log record of this process from now on (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "masks_secrets", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        mask_record(record)
        return record

    factory.masks_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
