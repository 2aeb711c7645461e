"""Relay tricks are refused at RCPT (5xx) by the real listener, with smtplib speaking raw commands."""

from __future__ import annotations

import smtplib

import pytest
from sqlalchemy import func, select

from crm_inbox.models import InboundMessage
from tests.conftest import CRM
from tests.mailfactory import make_mail


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
def test_relay_tricks_are_refused_at_rcpt(service, factory, argument):
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
