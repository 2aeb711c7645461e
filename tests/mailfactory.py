"""Building test mail as raw bytes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

_counter = itertools.count(1)


def make_mail(
    sender: str = "Klaus Müller <klaus.mueller@mueller-maschinenbau.de>",
    to: str = "crm@beispiel-firma.de",
    subject: str | None = None,
    body: str = "Guten Tag,\n\nbitte senden Sie uns ein Angebot.\n\nMit freundlichen Grüßen\nKlaus Müller\n",
    *,
    cc: str | None = None,
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    date: datetime | None = None,
) -> bytes:
    n = next(_counter)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject if subject is not None else f"Anfrage Nr. {n}"
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    placeholder = make_msgid(idstring=f"t{n}", domain="test.example")
    msg["Message-ID"] = placeholder
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, ctype, data in attachments:
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    raw = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    if message_id is not None:  # set verbatim: tests use Message-IDs the email package would refuse
        raw = raw.replace(placeholder.encode(), message_id.encode("utf-8"), 1)
    return raw
