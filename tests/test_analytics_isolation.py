"""Apart means apart (issue #20): analytics never writes the operative database (its source connection is
read-only: tried here), and `serve` takes mail, calls and pages as before while the analytical store is
missing, corrupt or locked, saying so in one log line."""

from __future__ import annotations

import http.cookiejar
import json
import re
import smtplib
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import DBAPIError

from crm_inbox.analytics.source import snapshot, source_engine
from crm_inbox.analytics.store import build_store
from crm_inbox.db import unit_of_work
from crm_inbox.models import Call, Company, Contact, ContactEmail, InboundMessage, InboundState
from crm_inbox.staff.service import add_staff
from tests.conftest import CRM, make_token
from tests.mailfactory import make_mail
from tests.serveproc import Serve, config_file, serve, wait_until

CTI_TOKEN = "isolation-cti-token"
ADMIN = "anna.schmidt@beispiel-firma.de"
PASSWORD = "richtig-geheim-42"

# --- analytics never writes the operative database ------------------------------------------------------

WRITES = {
    "insert": insert(Company).values(name="Eingeschmuggelt GmbH"),
    "update": update(Company).values(name="Umbenannt GmbH"),
    "delete": delete(Company),
}


@pytest.mark.parametrize("write", WRITES)
def test_the_refresh_source_connection_refuses_every_write(settings, factory, write):
    with unit_of_work(factory) as session:
        session.add(Company(name="Müller Maschinenbau GmbH"))
    engine = source_engine(settings.database.url)
    try:
        with snapshot(engine) as conn:  # the refresh reads through exactly this
            assert conn.execute(select(Company.name)).scalars().all() == ["Müller Maschinenbau GmbH"]
            with pytest.raises(DBAPIError, match=r"(?i)read.?only"):
                conn.execute(WRITES[write])
        # Also outside the refresh's snapshot: the connection itself is read-only, whatever a caller does.
        with engine.connect() as conn, pytest.raises(DBAPIError, match=r"(?i)read.?only"):
            conn.execute(WRITES[write])
            conn.commit()
    finally:
        engine.dispose()
    with factory() as session:
        assert session.execute(select(Company.name)).scalars().all() == ["Müller Maschinenbau GmbH"]


# --- serve goes on whatever state the store is in -------------------------------------------------------

class Node:
    """One serve process, a logged-in browser (cookies) and its log."""

    def __init__(self, proc: Serve) -> None:
        self.proc = proc
        self.base = f"http://127.0.0.1:{proc.web_port}"
        self.browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.browser.open(self.base + path, timeout=60) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def log_in(self) -> None:
        _, page = self.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token is not None
        data = urllib.parse.urlencode({"email": ADMIN, "password": PASSWORD, "csrf_token": token.group(1)})
        with self.browser.open(self.base + "/login", data=data.encode(), timeout=60) as response:
            assert "/login" not in response.url

    def call_event(self, call_id: str) -> int:
        body = {"event": "new", "call_id": call_id, "at": datetime.now(UTC).isoformat(), "direction": "in",
                "from": "+49 30 98765012", "to": "+49 89 4711-22"}
        request = urllib.request.Request(f"{self.base}/api/v1/calls/events", data=json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {CTI_TOKEN}",
                                                  "Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def store_lines(self) -> list[str]:
        """The log lines about the analytical store."""
        return [line for line in self.proc.log.read_text(errors="replace").splitlines()
                if "analytics" in line.lower()]


@pytest.fixture
def node(settings, factory, tmp_path) -> Iterator[tuple[Node, int, Path]]:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        add_staff(session, ADMIN, "Anna Schmidt", "admin", password=PASSWORD)
        contact = Contact(name="Klaus Müller", tags=[], fields={})
        contact.emails = [ContactEmail(email="klaus.mueller@mueller-maschinenbau.de")]
        session.add(contact)
        session.flush()
        contact_id = contact.id
    store = tmp_path / "store" / "analytics.duckdb"
    store.parent.mkdir()
    config = config_file(tmp_path, "isolation", settings.database.url, cti={"token": CTI_TOKEN},
                         phone={"own_numbers": ["+49 89 4711-0"]}, analytics={"path": str(store)})
    proc = serve(config, tmp_path / "serve.log")
    try:
        yield Node(proc), contact_id, store
        assert proc.stop() == 0
    finally:
        proc.ensure_gone()


def _hold_open_for_writing(store: Path) -> subprocess.Popen[str]:
    """Another program with the store open for writing (DuckDB allows one writer and no readers then)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys\n"
         "con = duckdb.connect(sys.argv[1], config={'autoinstall_known_extensions': False, "
         "'autoload_known_extensions': False})\n"
         "print('open', flush=True)\nsys.stdin.read()\n", str(store)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
    return holder


def test_serve_takes_mail_calls_and_pages_as_before_with_the_store_missing_corrupt_or_locked(node, factory):
    web, contact_id, store = node
    web.log_in()
    assert web.proc.smtp_port is not None
    holder: subprocess.Popen[str] | None = None
    try:
        for state in ("missing", "corrupt", "locked"):
            if state == "corrupt":
                store.write_bytes(b"\x00garbage, not a DuckDB file\xff" * 512)
            elif state == "locked":
                store.unlink()
                build_store(store, {})
                holder = _hold_open_for_writing(store)
            before = len(web.store_lines())
            with smtplib.SMTP("127.0.0.1", web.proc.smtp_port, timeout=60) as client:
                assert client.sendmail("klaus.mueller@mueller-maschinenbau.de", [CRM],
                                       make_mail(subject=f"Store {state}")) == {}
            assert web.call_event(f"call-{state}") == 200
            status, page = web.get(f"/contacts/{contact_id}")
            assert status == 200 and "Klaus Müller" in page, state
            # The reports say they cannot be read (never a 500), as often as they are asked …
            for _ in range(2):
                status, _ = web.get("/reports")
                assert status in (200, 503), (state, status)
            # … and the log says it once.
            assert wait_until(lambda: len(web.store_lines()) > before, timeout=10), state  # noqa: B023
            lines = web.store_lines()[before:]
            assert len(lines) == 1 and state in lines[0], (state, lines)
    finally:
        if holder is not None:
            holder.communicate("")
    assert web.proc.proc.poll() is None  # still serving

    def processed() -> bool:
        with factory() as session:
            return set(session.execute(select(InboundMessage.state)).scalars()) == {InboundState.PROCESSED}

    assert wait_until(processed, timeout=30)
    with factory() as session:
        assert sorted(session.execute(select(Call.call_id)).scalars()) == ["call-corrupt", "call-locked",
                                                                          "call-missing"]
        assert len(session.execute(select(InboundMessage.id)).all()) == 3


# --- without analytics, the app never loads it ------------------------------------------------------------

LOADED = """
import json, sys
from pathlib import Path
from tests.conftest import make_settings

def loaded():
    return {"duckdb": "duckdb" in sys.modules, "analytics": "crm_inbox.analytics" in sys.modules}

url, instance, store, token = sys.argv[1:]
seen = {}
import web.app
seen["import"] = loaded()
for enabled in (False, True):
    settings = make_settings(url, Path(instance), analytics={"enabled": enabled, "path": store})
    client = web.app.create_app(settings).test_client()
    seen[f"app {enabled}"] = loaded()
    response = client.get("/api/v1/reports/service", headers={"Authorization": f"Bearer {token}"})
    seen[f"report {enabled}"] = {**loaded(), "status": response.status_code}
print(json.dumps(seen))
"""


def test_an_app_without_analytics_never_loads_it_nor_duckdb_and_one_with_it_only_for_a_report(
        database_url, factory, tmp_path):
    token = make_token(factory, "leser@beispiel-firma.de", role="readonly")
    store = tmp_path / "analytics.duckdb"
    build_store(store, {})
    done = subprocess.run([sys.executable, "-c", LOADED, database_url, str(tmp_path / "instance"), str(store), token],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    nothing = {"duckdb": False, "analytics": False}
    assert seen["import"] == seen["app False"] == nothing
    assert seen["report False"] == {**nothing, "status": 404}  # switched off: no reports, still nothing loaded
    # Switched on, the pages are mounted; the report queries and DuckDB come with the first report asked for.
    assert seen["app True"]["duckdb"] is False
    assert seen["report True"] == {"duckdb": True, "analytics": True, "status": 200}
