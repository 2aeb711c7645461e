"""`crm-inbox serve` as a real process: mail in over SMTP, visible in the API, SIGTERM exits cleanly."""

from __future__ import annotations

import json
import smtplib
import urllib.request

from sqlalchemy import select

from crm_inbox.models import InboundMessage, InboundState
from tests.conftest import CRM, make_token
from tests.mailfactory import make_mail
from tests.serveproc import config_file, serve


def test_serve_takes_mail_shows_it_in_the_api_and_stops_on_sigterm(settings, factory, tmp_path):
    config = config_file(tmp_path, "serve", settings.database.url)
    token = make_token(factory, "anna.schmidt@beispiel-firma.de")
    log = tmp_path / "serve.log"
    first = serve(config, log)
    try:
        assert first.smtp_port is not None
        with smtplib.SMTP("127.0.0.1", first.smtp_port, timeout=60) as client:
            client.sendmail("k@example.com", [CRM], make_mail(subject="Bitte um Rückruf"))
        assert first.stop() == 0
    finally:
        first.ensure_gone()
    # Everything that got a 250 before the stop is stored and was processed before the exit.
    with factory() as session:
        stored = session.execute(select(InboundMessage)).scalar_one()
        assert stored.state == InboundState.PROCESSED

    # And the API of a fresh process shows it on the contact's timeline.
    second = serve(config, log)
    try:
        def get(path: str) -> dict:
            request = urllib.request.Request(f"http://127.0.0.1:{second.web_port}{path}",
                                             headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)

        contact = get("/api/v1/contacts?email=klaus.mueller@mueller-maschinenbau.de")["items"][0]
        timeline = get(f"/api/v1/contacts/{contact['id']}/timeline")["items"]
        assert [item["subject"] for item in timeline] == ["Bitte um Rückruf"]
        assert second.stop() == 0
    finally:
        second.ensure_gone()
