"""Relay tricks are refused at RCPT (5xx) by the real listener, with smtplib speaking raw commands."""

from __future__ import annotations

import shutil
import smtplib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.db import make_engine, make_sessionmaker
from crm_inbox.models import InboundMessage
from tests.conftest import CRM, _empty_pg_schema, make_settings
from tests.mailfactory import make_mail


@pytest.fixture(scope="module")
def listener(_schema: str, pg_url: str | None, _pg_cleaner: Engine | None,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, sessionmaker[Session]]]:
    """One running service and its (empty) database for all the refused tricks: each of them must leave
    nothing stored, so one listener proves that as well as fourteen, without fourteen start-ups of the
    intake's writer process."""
    from crm_inbox.runtime import Service

    directory = tmp_path_factory.mktemp("relay")
    if pg_url:
        assert _pg_cleaner is not None
        _empty_pg_schema(_pg_cleaner)
        url = pg_url
    else:
        shutil.copy(_schema, directory / "crm.db")
        url = f"sqlite:///{directory / 'crm.db'}"
    service = Service(make_settings(url, directory / "instance"), web=False)
    service.start()
    engine = make_engine(url)
    yield service, make_sessionmaker(engine)
    engine.dispose()
    service.stop()


@pytest.mark.parametrize("argument", [
    f"TO:{CRM}",  # bracketless: not RFC 5321, and what relay probes send
    f"TO: {CRM}",
    "TO:<crm%beispiel-firma.de@beispiel-firma.de>",  # percent hack: x%y@us would relay to y
    "TO:<crm%example.com@beispiel-firma.de>",
    f"TO:<@relay.example:{CRM}>",  # source route: aiosmtpd would silently drop it and accept
    f"TO:<@a.example,@b.example:{CRM}>",
    f"TO:<{CRM}@example.com>",  # x@y@z
    "TO:<crm@example.com@beispiel-firma.de>",
    "TO:<example.com!crm@beispiel-firma.de>",  # UUCP bang path
    f"TO:<{CRM}",  # unbalanced
    f"TO:<<{CRM}>>",
    f"TO:<{CRM}> ORCPT=rfc822;x@example.com FOO=BAR",  # parameters nobody asked for
    "TO:<>",
    "TO:<postmaster>",
])
def test_relay_tricks_are_refused_at_rcpt(listener, argument):
    service, factory = listener
    with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as client:
        client.ehlo()
        client.mail("klaus@example.com")
        code, message = client.docmd("RCPT", argument)
        assert 500 <= code < 600, (argument, code, message)
        # The session stays usable, and with no accepted recipient nothing can be delivered.
        code, _ = client.docmd("DATA")
        assert code == 554 or 500 <= code < 600
    with factory() as session:
        assert session.execute(select(func.count()).select_from(InboundMessage)).scalar_one() == 0


def test_the_strict_form_with_esmtp_parameters_and_any_case_is_accepted(service, factory):
    with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as client:
        client.ehlo()
        client.mail("klaus@example.com")
        assert client.docmd("RCPT", f"TO:<{CRM.upper()}>")[0] == 250
        assert client.docmd("RCPT", f"to:<{CRM}> ")[0] == 250
        assert client.rcpt(CRM)[0] == 250  # smtplib's own form
        assert client.data(make_mail())[0] == 250
    with factory() as session:
        assert session.execute(select(func.count()).select_from(InboundMessage)).scalar_one() == 1
