"""German and English: a German browser gets German pages, anyone can switch, and the German catalogue
translates every text of the pages (checked against the sources, so a new text cannot slip through)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from crm_inbox.db import unit_of_work
from crm_inbox.staff.service import add_staff
from tests.test_pages import PASSWORD, STAFF, log_in

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "web" / "translations" / "de" / "LC_MESSAGES"


@pytest.fixture
def staff(factory):  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)


def test_a_german_browser_gets_german_pages_and_can_switch_to_english(client, staff):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de-DE,de;q=0.9,en;q=0.8"
    page = client.get("/login").get_data(as_text=True)
    assert "Passwort" in page and "Anmelden" in page
    log_in(client)  # the form's labels are German, its field names the same
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "Jetzt fällig" in dashboard and "Neue Wiedervorlage" in dashboard and "Due now" not in dashboard
    english = client.get("/dashboard?lang=en").get_data(as_text=True)
    assert "Due now" in english
    assert "Due now" in client.get("/dashboard").get_data(as_text=True)  # the choice is kept
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en-GB"
    assert "Jetzt fällig" in client.get("/dashboard?lang=de").get_data(as_text=True)


def test_an_english_or_unknown_browser_gets_english(client, staff):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "fr-FR,fr;q=0.9"
    assert "Password" in client.get("/login").get_data(as_text=True)


def test_every_text_of_the_pages_has_a_german_translation(tmp_path):
    template = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run([str(pybabel), "extract", "-F", "babel.cfg", "-o", str(template), "web"], cwd=ROOT, check=True,
                   capture_output=True)
    wanted = {m.id for m in read_po(template.open("rb")) if m.id}
    with (CATALOGUE / "messages.po").open("rb") as f:
        german = {m.id: m.string for m in read_po(f) if m.id}
    untranslated = sorted((i for i in wanted if not german.get(i)), key=str)  # plural msgids are tuples
    assert not untranslated, f"add German for these to messages.po (see babel.cfg): {untranslated}"
    with (CATALOGUE / "messages.mo").open("rb") as f:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(f) if m.id}
    assert {i: _key(german[i]) for i in wanted} == {i: compiled.get(i) for i in wanted}, \
        "messages.mo is older than messages.po: run pybabel compile -d web/translations"


def _key(value: str | tuple[str, ...] | list[str]) -> str | tuple[str, ...]:
    """A message id or text; plural forms (read as lists from the compiled catalogue) as a tuple."""
    return tuple(value) if isinstance(value, (list, tuple)) else value
