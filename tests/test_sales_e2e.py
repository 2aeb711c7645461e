"""The sales path from end to end, through the real endpoints of a running `crm-inbox serve`: a lead writes in
over SMTP, staff open an opportunity and send a quote PDF by mail from the CRM (it reaches a real SMTP sink),
the customer's reply (over SMTP again) lands on the deal and completes the follow-up reminder, the quote
becomes an order and the order's JSON and CSV are ready for the ERP. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import json
import smtplib
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from email.message import EmailMessage
from typing import Any

import pytest

from tests.conftest import CRM, make_token
from tests.mailfactory import make_mail
from tests.serveproc import config_file, notifications, serve, wait_until

CUSTOMER = "Klaus Müller <klaus.mueller@mueller-maschinenbau.de>"


@dataclass
class CapturingSink:
    """An SMTP server standing in for the company's relay: it keeps every message it is given."""

    messages: list[EmailMessage] = field(default_factory=list)
    in_flight: int = 0  # the server's stop() waits for messages being handled
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 2.0.0 Ok"


@pytest.fixture
def sink():  # type: ignore[no-untyped-def]
    from handlers.smtp import SmtpServer

    handler = CapturingSink()
    server = SmtpServer(handler, "127.0.0.1", 0, max_message_bytes=5_000_000)  # type: ignore[arg-type]
    port = server.start()
    yield handler, port
    server.stop()


class Api:
    def __init__(self, port: int, token: str) -> None:
        self.base, self.token = f"http://127.0.0.1:{port}/api/v1", token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any, str]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw, status, kind = response.read(), response.status, response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raw, status, kind = exc.read(), exc.code, exc.headers.get("Content-Type", "")
        return status, (json.loads(raw) if "json" in kind else raw), kind

    def ok(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        status, payload, _ = self.call(method, path, body)
        assert 200 <= status < 300, (method, path, status, payload)
        return payload


def test_lead_to_order_through_smtp_and_the_api(settings, factory, tmp_path, sink):
    handler, sink_port = sink
    config = config_file(tmp_path, "serve", settings.database.url,
                         notifications=notifications(sink_port, timeout_seconds=10),
                         company={"name": "Beispiel Firma GmbH", "street": "Hauptstraße 1", "postcode": "80331",
                                  "city": "München", "register_court": "Amtsgericht München",
                                  "register_number": "HRB 123456", "managing_directors": "Anna Schmidt",
                                  "seat": "München", "vat_id": "DE123456789"})
    token = make_token(factory, "anna.schmidt@beispiel-firma.de", role="staff", name="Anna Schmidt")
    proc = serve(config, tmp_path / "serve.log")
    try:
        assert proc.smtp_port is not None
        api = Api(proc.web_port, token)

        # 1. A lead writes in.
        with smtplib.SMTP("127.0.0.1", proc.smtp_port, timeout=60) as client:
            client.sendmail("klaus.mueller@mueller-maschinenbau.de", [CRM],
                            make_mail(sender=CUSTOMER, subject="Anfrage Fräsmaschine"))
        contact = wait_until(lambda: (api.ok("GET", "/contacts?email=klaus.mueller@mueller-maschinenbau.de")
                                      ["items"] or [None])[0], 60)
        assert contact and contact["role"] == "lead"

        # 2. Staff open an opportunity: the lead becomes a prospect.
        opp = api.ok("POST", "/opportunities", {"title": "Fräsmaschine FM-200", "contact_id": contact["id"]})
        assert api.ok("GET", f"/contacts/{contact['id']}")["role"] == "prospect"

        # 3. A quote with a product line and a free line, sent by mail from the CRM with its PDF.
        product = api.ok("POST", "/products", {"number": "FM-200", "name": "Fräsmaschine FM-200",
                                               "net_price": "12500.00", "vat_rate": "19", "unit": "Stück"})
        quote = api.ok("POST", "/quotes", {"opportunity_id": opp["id"], "lines": [
            {"product_id": product["id"], "quantity": "1"},
            {"text": "Einweisung vor Ort", "quantity": "3", "unit": "Stunde", "unit_price": "95.00",
             "vat_rate": "19", "discount_percent": "10"}]})
        assert quote["totals"]["net"] == "12756.50" and quote["totals"]["gross"] == "15180.24"
        sent = api.ok("POST", f"/quotes/{quote['id']}/send",
                      {"subject": "Ihr Angebot", "text": "Sehr geehrter Herr Müller,\n\nanbei unser Angebot."})
        number = sent["label"]
        assert number.startswith("AN-") and sent["state"] == "sent"
        assert wait_until(lambda: handler.messages, 60), "the quote mail never reached the relay"
        quote_mail = handler.messages[0]
        assert quote_mail["To"] == "klaus.mueller@mueller-maschinenbau.de"
        pdfs = [part for part in quote_mail.iter_attachments() if part.get_content_type() == "application/pdf"]
        assert len(pdfs) == 1 and pdfs[0].get_content().startswith(b"%PDF")
        assert "HRB 123456" in quote_mail.get_body(("plain",)).get_content()  # § 35a GmbHG in the signature
        follow_ups = api.ok("GET", f"/opportunities/{opp['id']}")["reminders"]
        assert [r["state"] for r in follow_ups] == ["open"] and number in follow_ups[0]["title"]

        # 4. The customer answers the quote mail: the reply lands on the deal, the follow-up completes itself.
        with smtplib.SMTP("127.0.0.1", proc.smtp_port, timeout=60) as client:
            client.sendmail("klaus.mueller@mueller-maschinenbau.de", [CRM], make_mail(
                sender=CUSTOMER, subject=f"Re: {quote_mail['Subject']}",
                body="Guten Tag,\n\nwir nehmen das Angebot an.\n\nKlaus Müller\n",
                headers={"In-Reply-To": quote_mail["Message-ID"], "References": quote_mail["Message-ID"]}))

        def reply_on_deal() -> bool:
            items = api.ok("GET", f"/opportunities/{opp['id']}/timeline")["items"]
            return any(i["kind"] == "email" and i["direction"] == "in" for i in items)

        assert wait_until(reply_on_deal, 60), "the customer's reply did not reach the deal"
        follow_ups = api.ok("GET", f"/opportunities/{opp['id']}")["reminders"]
        assert [r["state"] for r in follow_ups] == ["done"]

        # 5. The quote becomes an order; its JSON and CSV are ready for the ERP.
        order = api.ok("POST", f"/quotes/{quote['id']}/accept")
        assert order["number"].startswith("AB-")
        erp = api.ok("GET", f"/orders/{order['id']}")
        assert erp["totals"]["gross"] == "15180.24" and erp["quote_number"] == number
        assert [line["net"] for line in erp["lines"]] == ["12500.00", "256.50"]
        assert erp["customer"]["email"] == "klaus.mueller@mueller-maschinenbau.de"
        assert Decimal(erp["totals"]["net"]) + Decimal(erp["totals"]["vat"]) == Decimal(erp["totals"]["gross"])
        status, csv_text, kind = api.call("GET", f"/orders/{order['id']}?format=csv")
        assert status == 200 and "text/csv" in kind and b"FM-200" in csv_text
        assert api.ok("GET", f"/contacts/{contact['id']}")["role"] == "customer"
        assert api.ok("GET", f"/opportunities/{opp['id']}")["stage"] == "won"
        assert proc.stop() == 0
    finally:
        proc.ensure_gone()
