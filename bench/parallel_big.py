"""Do big deliveries stall everyone else? Ten 20 MB messages over SMTP at once, while a small message is
sent again and again and the web app is asked for /healthz; prints how long those took.

    .venv/bin/python bench/parallel_big.py [--count 10] [--mb 14.5]

(The issue's claim: "ten parallel 20 MB messages do not stall other connections or the web app".)
"""

from __future__ import annotations

import argparse
import logging
import os
import smtplib
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crm_inbox.config import Settings, replace
from crm_inbox.db import make_engine, upgrade
from crm_inbox.runtime import Service

CRM = "crm@beispiel-firma.de"


def message(subject: str, attachment_bytes: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "sender@example.com", CRM, subject
    msg.set_content("Anbei die Datei.\n")
    if attachment_bytes:
        msg.add_attachment(os.urandom(attachment_bytes), maintype="application", subtype="octet-stream",
                           filename="data.bin")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10, help="big messages sent at once")
    parser.add_argument("--mb", type=float, default=14.5, help="attachment size (base64 makes the mail ~1.37× larger)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        settings = replace(Settings(), database={"url": f"sqlite:///{tmp}/crm.db"}, service={"instance_dir": tmp},
                           smtp={"port": 0}, web={"port": 0}, mail={"crm_addresses": (CRM,)})
        engine = make_engine(settings.database.url)
        upgrade(engine)
        engine.dispose()
        service = Service(settings)
        service.start()
        try:
            big = [message(f"big {i}", int(args.mb * 1_000_000)) for i in range(args.count)]

            def send(raw: bytes) -> None:
                with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=300) as client:
                    client.sendmail("sender@example.com", [CRM], raw)

            senders = [threading.Thread(target=send, args=(raw,)) for raw in big]
            started = time.monotonic()
            for thread in senders:
                thread.start()
            small_ms: list[float] = []
            web_ms: list[float] = []
            while any(t.is_alive() for t in senders):
                t0 = time.monotonic()
                send(message(f"small {len(small_ms)}", 0))
                small_ms.append((time.monotonic() - t0) * 1000)
                t0 = time.monotonic()
                urllib.request.urlopen(f"http://127.0.0.1:{service.web_port}/healthz", timeout=60).read()
                web_ms.append((time.monotonic() - t0) * 1000)
            total = time.monotonic() - started
            service.worker.wait_idle()
        finally:
            service.stop()
    size_mb = len(big[0]) / 1e6
    print(f"{args.count} messages of {size_mb:.1f} MB in parallel: all accepted after {total:.1f} s")
    print(f"small message SMTP transaction meanwhile: n={len(small_ms)}, median {statistics.median(small_ms):.0f} ms, "
          f"max {max(small_ms):.0f} ms")
    print(f"web GET /healthz meanwhile: n={len(web_ms)}, median {statistics.median(web_ms):.0f} ms, "
          f"max {max(web_ms):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
