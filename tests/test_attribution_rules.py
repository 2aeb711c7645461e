"""The pure attribution pieces on cases the corpus does not spell out."""

from __future__ import annotations

from crm_inbox.config import MailSettings
from crm_inbox.intake.store import Envelope, store
from crm_inbox.mail.attribution import Evidence, authenticated_by_trusted_host, decide
from crm_inbox.mail.forwarded import find_inline_forward
from crm_inbox.mail.html import html_to_text
from crm_inbox.mail.parse import parse_mail
from crm_inbox.models import Company, Contact, Direction, Interaction
from crm_inbox.pipeline.runner import process
from crm_inbox.timeline.service import EXCERPT_CHARS, _first_reply_excerpt, clean_excerpt
from tests.conftest import make_settings
from tests.mailfactory import make_mail

MAIL = MailSettings(crm_addresses=("crm@firma.de",), support_addresses=(), staff_domains=("firma.de",),
                    trusted_authserv_ids=("mx.firma.de",))


def staff(email: str) -> bool:
    return email.endswith("@firma.de")


def test_excerpt_drops_quoted_history_and_signature_in_german_and_english():
    german = ("Hallo Frau Schmidt,\n\ndas Angebot passt, bitte liefern.\n\nMit freundlichen Grüßen\nKlaus Müller\n"
              "\nAm 03.11.2026 um 10:12 schrieb Anna Schmidt <anna@firma.de>:\n> Anbei das Angebot über 12.000 EUR\n")
    english = ("Hi Anna,\n\nworks for us.\n\nOn Mon, 3 Nov 2026 at 10:12, Anna <anna@firma.de> wrote:\n"
               "> Here is the quote\n")
    assert "12.000" not in clean_excerpt(german) and "das Angebot passt" in clean_excerpt(german)
    assert clean_excerpt(english).startswith("Hi Anna, works for us.")
    assert "Here is the quote" not in clean_excerpt(english)


def test_excerpt_of_a_long_thread_is_the_new_part_as_if_the_whole_text_were_read():
    # clean_excerpt reads the start of a long text first: the excerpt must be what reading all of it gives.
    thread = ""
    for n in range(12):  # each reply quotes the whole thread so far: kilobytes of quoted history
        thread = (f"Hallo Herr Müller,\n\nzu Position {n}: die Lieferung kommt am {n + 1}. Dezember, bitte "
                  f"bestätigen Sie den Termin.\n\nMit freundlichen Grüßen\nAnna Schmidt\n\n"
                  f"Am 0{n % 9 + 1}.11.2026 um 10:1{n % 10} schrieb Klaus Müller <klaus@kunde.de>:\n"
                  + "\n".join("> " + line for line in thread.splitlines()))
    long_first = ("Sehr geehrte Damen und Herren,\n\n" + "wir bestellen hiermit die Positionen aus Ihrem Angebot "
                  "und bitten um eine Auftragsbestätigung. " * 40 + "\n\nGruß\nKlaus\n\n"
                  "On Mon, 3 Nov 2026 at 10:12, Anna <anna@firma.de> wrote:\n> Here is the quote\n")
    short_first = "Passt.\n\nOn Mon, 3 Nov 2026 at 10:12, Anna <anna@firma.de> wrote:\n" + "> Angebot\n" * 400
    assert len(thread) > 3_000
    assert clean_excerpt(thread) == ("Hallo Herr Müller, zu Position 11: die Lieferung kommt am 12. Dezember, bitte "
                                     "bestätigen Sie den Termin.")
    assert clean_excerpt(long_first).startswith("Sehr geehrte Damen und Herren, wir bestellen hiermit")
    assert clean_excerpt(long_first).endswith("…") and len(clean_excerpt(long_first)) == 280
    assert clean_excerpt(short_first) == "Passt."
    for text in (thread, long_first, short_first):
        assert clean_excerpt(text) == _first_reply_excerpt(text, EXCERPT_CHARS)  # the whole text read


def test_authentication_results_count_only_from_our_host_and_for_the_from_domain():
    def mail(header: str) -> bytes:
        return make_mail(sender="anna@firma.de", headers={"Authentication-Results": header})

    ok = parse_mail(mail("mx.firma.de; dkim=pass header.d=firma.de"))
    assert authenticated_by_trusted_host(ok, MAIL.trusted_authserv_ids) == "dkim=pass for firma.de from mx.firma.de"
    for header in ("mx.evil.example; dkim=pass header.d=firma.de",       # someone else's verdict
                   "mx.firma.de; dkim=pass header.d=evil.example",       # signed, but not by our domain
                   "mx.firma.de; dkim=fail header.d=firma.de; spf=softfail smtp.mailfrom=firma.de"):
        assert authenticated_by_trusted_host(parse_mail(mail(header)), MAIL.trusted_authserv_ids) is None


def test_spoofed_staff_sender_is_never_outbound_and_names_nobody():
    raw = make_mail(sender="anna@firma.de", to="kunde@example.com")
    result = decide(parse_mail(raw), is_staff=staff, is_staff_user=staff, settings=MAIL,
                    evidence=Evidence(peer="203.0.113.9", envelope_from="anna@firma.de"))
    assert result.spoof_suspected and result.direction == Direction.IN and result.parties == []


def test_forward_header_inside_quoted_lines_or_below_a_reply_marker_does_not_decide():
    quoted = "FYI\n\n> From: Klaus <klaus@kunde.example>\n> Sent: Monday\n> Subject: x\n"
    assert find_inline_forward(quoted) is None
    below_reply = ("Siehe unten\n\nAm 03.11.2026 um 10:12 schrieb Petra <petra@gmx.de>:\n"
                   "---------- Forwarded message ---------\nFrom: Klaus <klaus@kunde.example>\nDate: x\n")
    assert find_inline_forward(below_reply) is None


def test_html_tables_keep_their_reading_order():
    html = ("<div>-------- Forwarded Message --------<table><tr><th>Subject: </th><td>Rechnung</td></tr>"
            "<tr><th>From: </th><td>Sarah &lt;s@acme.example&gt;</td></tr></table><p>Text</p></div>")
    assert [line for line in html_to_text(html).splitlines() if line] == [
        "-------- Forwarded Message --------", "Subject: Rechnung", "From: Sarah <s@acme.example>", "Text"]


def test_unknown_business_domain_creates_a_company_only_when_configured(database_url, tmp_path, factory):
    on = make_settings(database_url, tmp_path, mail={"crm_addresses": ("crm@firma.de",), "staff_domains": ("firma.de",),
                                                     "create_company_for_unknown_domain": True})
    for sender in ("Eva Neu <eva@neukunde.example>", "Max <max.free@gmx.de>"):
        accepted = store(factory, make_mail(sender=sender, to="crm@firma.de"), Envelope(rcpt_to=("crm@firma.de",)))
        process(factory, on, accepted.inbound_id)
    with factory() as session:
        companies = {c.name: [d.domain for d in c.domains] for c in session.query(Company)}
        assert companies == {"neukunde.example": ["neukunde.example"]}
        eva = session.query(Contact).filter(Contact.name == "Eva Neu").one()
        assert eva.company_id is not None
        assert session.query(Interaction).count() == 2
