"""`crm-inbox serve` as a real process: mail in over SMTP, visible in the API, SIGTERM exits cleanly."""

from __future__ import annotations

import json
import re
import signal
import smtplib
import subprocess
import sys
import urllib.request

from sqlalchemy import select

from crm_inbox.models import InboundMessage, InboundState
from tests.conftest import CRM, make_token
from tests.mailfactory import make_mail


def test_serve_takes_mail_shows_it_in_the_api_and_stops_on_sigterm(settings, factory, tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text(
        f"[service]\ninstance_dir = '{tmp_path / 'instance'}'\n[database]\nurl = '{settings.database.url}'\n"
        f"[web]\nport = 0\n[smtp]\nport = 0\n[mail]\ncrm_addresses = ['{CRM}']\n")
    token = make_token(factory, "anna.schmidt@beispiel-firma.de")
    # The log goes to a file: an unread pipe fills up and would block the server mid-write.
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "crm_inbox", "--config", str(config), "serve"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/ · SMTP 127\.0\.0\.1:(\d+)", banner)
        assert match, banner + (tmp_path / "serve.log").read_text()
        web_port, smtp_port = int(match.group(1)), int(match.group(2))
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as client:
            client.sendmail("k@example.com", [CRM], make_mail(subject="Bitte um Rückruf"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    # Everything that got a 250 before the stop is stored and was processed before the exit.
    with factory() as session:
        stored = session.execute(select(InboundMessage)).scalar_one()
        assert stored.state == InboundState.PROCESSED

    # And the API of a fresh process shows it on the contact's timeline.
    proc = subprocess.Popen([sys.executable, "-m", "crm_inbox", "--config", str(config), "serve"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        banner = proc.stdout.readline()  # type: ignore[union-attr]
        web_port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", banner).group(1))  # type: ignore[union-attr]

        def get(path: str) -> dict:
            request = urllib.request.Request(f"http://127.0.0.1:{web_port}{path}",
                                             headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)

        contact = get("/api/v1/contacts?email=klaus.mueller@mueller-maschinenbau.de")["items"][0]
        timeline = get(f"/api/v1/contacts/{contact['id']}/timeline")["items"]
        assert [item["subject"] for item in timeline] == ["Bitte um Rückruf"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
