"""Sending a campaign: the held mails are released at [campaigns] per_minute (the gate's schedule over the release
times, every mail at a real SMTP sink),
each recipient exactly once however many release loops run, pause and cancel stop it, resume goes on, an opt-out
since the start takes effect at once, every mail is on its recipient's timeline as campaign mail, and a
`crm-inbox serve` killed with SIGKILL in the middle of sending loses nobody and sends at most one mail twice,
which the outbox reports as uncertain."""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.campaigns import service as campaigns
from crm_inbox.campaigns.sending import next_gate, release_due, withdrawn
from crm_inbox.config import Settings, replace
from crm_inbox.consent import ledger
from crm_inbox.consent.policy import Consent
from crm_inbox.db import make_engine, make_sessionmaker, unit_of_work
from crm_inbox.models import (
    Campaign,
    CampaignRecipient,
    CampaignState,
    Channel,
    ConsentRecord,
    ConsentState,
    Contact,
    ContactEmail,
    Interaction,
    InteractionContact,
    LegalBasis,
    OutgoingMail,
    RecipientState,
    Segment,
    StaffUser,
    utcnow,
)
from crm_inbox.scheduler import TICK
from crm_inbox.staff.service import add_staff
from crm_inbox.timeline.service import contact_timeline
from tests.serveproc import config_file, notifications, serve, wait_until

# The tests' clock, after every time the code under test reads from the real one (a resume's new gate).
T0 = utcnow().replace(microsecond=0) + timedelta(days=1)


# --- an SMTP sink that notes when each mail arrived ------------------------------------------------------------

@dataclass
class TimingSink:
    """The company's relay: keeps each message with its arrival time. ``hold_at``: the message that makes the
    count this big is kept waiting for its 250 until ``release`` is set (the relay has it; the CRM does not know)."""

    hold_at: int | None = None
    port: int = 0  # where it listens
    arrivals: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic time, To, Message-ID)
    changed: threading.Condition = field(default_factory=threading.Condition)
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0
    closing: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        at = time.monotonic()
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.changed:
            self.arrivals.append((at, str(parsed["To"]), str(parsed["Message-ID"])))
            hold = self.hold_at is not None and len(self.arrivals) == self.hold_at
            self.changed.notify_all()
        if hold:
            self.held.set()
            await asyncio.to_thread(self.release.wait, 60)
        return "250 2.0.0 Ok"

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.arrivals) >= count, timeout)

    def per_address(self) -> Counter[str]:
        with self.changed:
            return Counter(to for _, to, _ in self.arrivals)


@pytest.fixture
def sink() -> Iterator[TimingSink]:
    from handlers.smtp import SmtpServer

    handler = TimingSink()
    server = SmtpServer(handler, "127.0.0.1", 0, max_message_bytes=1_000_000)  # type: ignore[arg-type]
    handler.port = server.start()
    yield handler
    handler.release.set()
    server.stop()


# --- a campaign whose ledger is written ----------------------------------------------------------------------

BASE = "https://crm.beispiel-firma.de"
SECRET = "campaign-sending-secret"  # [web] secret_key: the opt-out links are signed with it


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, web={"base_url": BASE, "secret_key": SECRET})


def _settings(settings: Settings, sink: TimingSink, per_minute: int) -> Settings:
    return replace(settings, notifications=notifications(sink.port, timeout_seconds=5),
                   campaigns={"per_minute": per_minute, "poll_seconds": 1})


def address(i: int) -> str:
    return f"kunde{i:03d}@example.org"


def admin(factory: sessionmaker[Session]) -> int:
    with unit_of_work(factory) as session:
        found = session.execute(select(StaffUser.id).where(StaffUser.name == "Clara Chefin")).scalar()
        return found or add_staff(session, "chefin@beispiel-firma.de", "Clara Chefin", "admin").id


def start_campaign(factory: sessionmaker[Session], settings: Settings, n: int, name: str = "Frühjahrsaktion",
                   at: datetime | None = None, first: int = 0) -> int:
    """``n`` people with e-mail consent in a segment of their own and a campaign to them started by an admin
    (``campaigns.service.start``: the send ledger and a held, rendered mail each); ``at`` puts its rate gate
    there (the clock of the tests that pass ``now``)."""
    actor = admin(factory)
    tag = f"kampagne-{name}"
    with unit_of_work(factory) as session:
        for i in range(first, first + n):
            contact = Contact(name=f"Kunde {i}", search_name=f"kunde {i}", tags=[tag])
            contact.emails = [ContactEmail(email=address(i))]
            session.add(contact)
            session.flush()
            session.add(ConsentRecord(contact_id=contact.id, channel=Channel.EMAIL, state=ConsentState.OPTED_IN,
                                      legal_basis=LegalBasis.CONSENT, source="web_form"))
        segment = Segment(name=f"Segment {name}", definition={"field": "tags", "op": "has", "value": tag})
        session.add(segment)
        session.flush()
        campaign_id = campaigns.create(session, settings, name=name, segment_id=segment.id, channel="email",
                                       subject="Neuheiten für {{ name }}", body="Guten Tag, {{ name }}",
                                       sender_name="Beispiel Vertrieb", actor=actor).id
    with unit_of_work(factory) as session:
        campaign = campaigns.start(session, settings, campaign_id, actor=actor)
        assert campaign.state == CampaignState.SENDING and campaign.recipient_count == n
        if at is not None:
            campaign.next_send_at = at
    return campaign_id


def set_state(factory: sessionmaker[Session], campaign_id: int, change: Any) -> None:
    """campaigns.service.pause, resume or cancel, by an admin."""
    actor = admin(factory)
    with unit_of_work(factory) as session:
        change(session, campaign_id, actor=actor)


def ledger_states(factory: sessionmaker[Session], campaign_id: int) -> Counter[str]:
    with factory() as session:
        return Counter(str(state) for state in session.execute(select(CampaignRecipient.state).where(
            CampaignRecipient.campaign_id == campaign_id)).scalars())


def outbox_states(factory: sessionmaker[Session]) -> Counter[str]:
    with factory() as session:
        return Counter(str(state) for state in session.execute(select(OutgoingMail.state)).scalars())


def campaign_row(factory: sessionmaker[Session], campaign_id: int) -> Campaign:
    with factory() as session:
        return session.get_one(Campaign, campaign_id)


# --- the decisions ---------------------------------------------------------------------------------------------

def test_the_gate_keeps_the_schedule_but_never_makes_up_for_a_pause():
    step = timedelta(seconds=1)
    assert next_gate(T0, T0 + timedelta(milliseconds=5), step) == T0 + step  # woke a little late: on schedule
    late = T0 + timedelta(milliseconds=1500)
    assert next_gate(T0, late, step) == T0 + step <= late  # very late: the next one is due at once …
    assert next_gate(T0 + step, late, step) == T0 + 2 * step > late  # … but no third
    after_pause = T0 + timedelta(hours=1)
    assert next_gate(T0, after_pause, step) == after_pause + step  # the schedule starts afresh
    assert next_gate(None, T0, step) == T0 + step


def test_what_withdraws_a_queued_recipient():
    opted_in = Consent(ConsentState.OPTED_IN, LegalBasis.CONSENT, T0, 1)
    customer = Consent(ConsentState.OPTED_IN, LegalBasis.EXISTING_CUSTOMER, T0, 1)
    assert withdrawn(opted_in, bouncing=False, suppression=None) is None
    assert withdrawn(customer, bouncing=False, suppression=None) is None
    assert withdrawn(Consent(ConsentState.OPTED_OUT, None, T0, 2), bouncing=False, suppression=None) == "opted_out"
    assert withdrawn(Consent(ConsentState.OPTED_IN, LegalBasis.EXISTING_CUSTOMER, T0, 3, objected=True),
                     bouncing=False, suppression=None) == "opted_out"
    assert withdrawn(opted_in, bouncing=True, suppression=None) == "bouncing"
    assert withdrawn(opted_in, bouncing=False, suppression="unsubscribed") == "opted_out"
    assert withdrawn(opted_in, bouncing=False, suppression="erased") == "erased"


# --- releasing ---------------------------------------------------------------------------------------------------

def test_one_mail_per_interval_on_the_timeline_then_done(factory, settings):
    settings = replace(settings, campaigns={"per_minute": 60})
    campaign_id = start_campaign(factory, settings, 3, at=T0)
    assert outbox_states(factory) == {"held": 3}

    assert release_due(factory, settings, now=T0) == 1
    assert release_due(factory, settings, now=T0 + timedelta(milliseconds=999)) == 0  # the gate is closed
    assert ledger_states(factory, campaign_id) == {"released": 1, "queued": 2}
    assert outbox_states(factory) == {"pending": 1, "held": 2}

    with factory() as session:
        first = session.execute(select(CampaignRecipient).where(
            CampaignRecipient.state == RecipientState.RELEASED)).scalar_one()
        assert first.released_at == T0 and first.interaction_id is not None
        page = contact_timeline(session, first.contact_id)
        [entry] = page.items
        assert entry.id == first.interaction_id
        assert (entry.kind, entry.direction) == ("email", "out")
        assert entry.details["campaign_id"] == campaign_id and entry.details["campaign"] == "Frühjahrsaktion"
        assert entry.subject == "Neuheiten für Kunde 0" and entry.text.startswith("Guten Tag, Kunde 0")
        assert entry.source_ref == first.message_id  # a reply's In-Reply-To finds the campaign
        mail = session.get_one(OutgoingMail, first.outgoing_mail_id)
        assert mail.interaction_id == entry.id and mail.to_address == address(0)

    assert release_due(factory, settings, now=T0 + timedelta(seconds=1)) == 1
    assert campaign_row(factory, campaign_id).state == CampaignState.SENDING
    assert release_due(factory, settings, now=T0 + timedelta(seconds=2)) == 1
    done = campaign_row(factory, campaign_id)
    assert done.state == CampaignState.DONE and done.finished_at == T0 + timedelta(seconds=2)
    assert ledger_states(factory, campaign_id) == {"released": 3}
    assert outbox_states(factory) == {"pending": 3}
    with factory() as session:  # one timeline entry per person, each linked as recipient
        links = session.execute(select(InteractionContact.contact_id, InteractionContact.role)).all()
        assert sorted(role for _, role in links) == ["to"] * 3 and len({c for c, _ in links}) == 3


def test_pause_stops_resume_goes_on(factory, settings):
    settings = replace(settings, campaigns={"per_minute": 60})
    campaign_id = start_campaign(factory, settings, 4, at=T0)
    assert release_due(factory, settings, now=T0) == 1
    set_state(factory, campaign_id, campaigns.pause)
    assert release_due(factory, settings, now=T0 + timedelta(hours=1)) == 0
    assert ledger_states(factory, campaign_id) == {"released": 1, "queued": 3}
    assert outbox_states(factory) == {"pending": 1, "held": 3}

    set_state(factory, campaign_id, campaigns.resume)
    later = T0 + timedelta(hours=2)
    assert release_due(factory, settings, now=later) == 1  # the hours paused are not made up for
    assert campaign_row(factory, campaign_id).next_send_at == later + timedelta(seconds=1)
    assert release_due(factory, settings, now=later + timedelta(milliseconds=999)) == 0
    assert release_due(factory, settings, now=later + timedelta(seconds=1)) == 1
    assert release_due(factory, settings, now=later + timedelta(seconds=2)) == 1
    assert campaign_row(factory, campaign_id).state == CampaignState.DONE
    assert ledger_states(factory, campaign_id) == {"released": 4}


def test_a_cancelled_campaign_releases_nothing_more(factory, settings):
    settings = replace(settings, campaigns={"per_minute": 60})
    campaign_id = start_campaign(factory, settings, 3, at=T0)
    assert release_due(factory, settings, now=T0) == 1
    set_state(factory, campaign_id, campaigns.cancel)
    assert release_due(factory, settings, now=T0 + timedelta(hours=1)) == 0
    assert ledger_states(factory, campaign_id) == {"released": 1, "cancelled": 2}
    assert outbox_states(factory) == {"pending": 1}
    assert campaign_row(factory, campaign_id).state == CampaignState.CANCELLED


def test_an_opt_out_after_the_start_takes_effect_at_once(factory, settings):
    settings = replace(settings, campaigns={"per_minute": 60})
    campaign_id = start_campaign(factory, settings, 3, at=T0)
    with unit_of_work(factory) as session:
        first, second = session.execute(select(CampaignRecipient.contact_id).where(
            CampaignRecipient.campaign_id == campaign_id).order_by(CampaignRecipient.id).limit(2)).scalars()
        ledger.record(session, first, Channel.EMAIL, ConsentState.OPTED_OUT, None, "unsubscribe")
        session.execute(update(ContactEmail).where(ContactEmail.contact_id == second).values(bouncing=True))

    assert release_due(factory, settings, now=T0) == 1  # the third, without waiting two intervals for it
    with factory() as session:
        rows = session.execute(select(CampaignRecipient.state, CampaignRecipient.reason, CampaignRecipient.address)
                               .where(CampaignRecipient.campaign_id == campaign_id)
                               .order_by(CampaignRecipient.id)).all()
        assert [(str(s), r) for s, r, _ in rows] == [("left_out", "opted_out"), ("left_out", "bouncing"),
                                                     ("released", None)]
        # Their mails are gone; only the third person's is sendable.
        assert session.execute(select(OutgoingMail.to_address)).scalars().all() == [address(2)]
        assert session.execute(select(func.count()).select_from(Interaction)).scalar_one() == 1
    campaign = campaign_row(factory, campaign_id)
    assert campaign.state == CampaignState.DONE and campaign.left_out == {"opted_out": 1, "bouncing": 1}


def test_a_letter_campaign_is_not_released_here(factory, settings):
    campaign_id = start_campaign(factory, settings, 1, at=T0)
    with unit_of_work(factory) as session:
        session.execute(update(Campaign).where(Campaign.id == campaign_id).values(channel=Channel.LETTER))
    assert release_due(factory, settings, now=T0 + timedelta(hours=1)) == 0
    assert campaign_row(factory, campaign_id).state == CampaignState.SENDING  # until the letters are printed


def test_two_release_loops_release_each_recipient_once(factory, settings):
    settings = replace(settings, campaigns={"per_minute": 60_000})  # a gate every millisecond: they collide
    n = 40
    campaign_id = start_campaign(factory, settings, n)
    counts: list[int] = []
    barrier = threading.Barrier(2)

    def loop() -> None:
        engine = make_engine(settings.database.url)  # a process of its own, as far as the database can tell
        own = make_sessionmaker(engine)
        mine = 0
        barrier.wait()
        try:
            while campaign_row(own, campaign_id).state == CampaignState.SENDING:
                mine += release_due(own, settings)
        finally:
            counts.append(mine)
            engine.dispose()

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(counts) == n and len(counts) == 2
    assert ledger_states(factory, campaign_id) == {"released": n}
    assert outbox_states(factory) == {"pending": n}
    with factory() as session:
        per_contact = session.execute(select(InteractionContact.contact_id, func.count())
                                      .group_by(InteractionContact.contact_id)).all()
        assert len(per_contact) == n and {c for _, c in per_contact} == {1}
        released = session.execute(select(CampaignRecipient.released_at).order_by(CampaignRecipient.released_at)
                                   ).scalars().all()
    # Whichever loop won a gate, together they kept to the rate: any k consecutive releases span more than
    # k − 3 intervals (one per interval, plus the two a release up to two intervals late may make up).
    step = timedelta(milliseconds=1)
    for i, first in enumerate(released):
        for j in range(i + 2, n):
            assert released[j] - first > (j - i - 2) * step - timedelta(microseconds=1), (i, j, released[j] - first)


# --- at a real relay ---------------------------------------------------------------------------------------------

def test_the_rate_is_held_at_the_relay(factory, settings, sink):
    """600 a minute (one every 100 ms) through the running service, started when the service was up (as staff
    start one): every mail reaches the relay, in the order released, and the releases keep to the rate.

    What is asserted is what the rate gate controls: the release times in the ledger and the gate's schedule
    (``next_send_at``). The arrival times at the relay add the outbox's and the machine's delays (a commit
    waiting for the disk, a thread or the database not scheduled for a few hundred ms on a loaded CI runner),
    which no gate can take back, so they are only reported.

    - The schedule: from the start, the gate moves on by exactly one interval per release; a release more than
      two intervals late (the machine stalled) restarts it one interval after that release, as designed (a
      stall is not made up in a burst). Replayed over the release times, this rule must end exactly where the
      service's gate ended, and no release may come before its gate. So the rate is the configured one, not
      about it: a gate that lets mails through twice as fast releases before its time, a gate that waits longer
      than an interval or never catches up after a late wake-up ends elsewhere, however busy the machine.
    - Never faster, as the relay sees it: any k consecutive releases span more than (k − 3) intervals (at most
      the two intervals a late release keeps to the schedule are made up at once).
    - Not slower: it follows that the gate moved on by n intervals for n releases, plus only the time the
      machine stalled (more than two intervals at once), which no rate limit can make up without a burst.
    ``test_the_gate_keeps_the_schedule_but_never_makes_up_for_a_pause`` pins the rule itself."""
    from crm_inbox.runtime import Service

    per_minute, n = 600, 20
    step = timedelta(seconds=60 / per_minute)
    settings = _settings(settings, sink, per_minute)
    service = Service(settings, web=False, smtp=False)
    service.start()
    try:
        # Serve has settled and sent before, as it has when staff start a campaign: a first campaign to one
        # person has gone out (the first release and send in a process compile their statements).
        assert service.sender.wait_idle() and service.scheduler.wait_runs(TICK)
        start_campaign(factory, settings, 1, name="Vorab", first=n)
        service.campaigns.wake()  # as the web app does after a start
        assert sink.wait_for(1, 30)
        sink.arrivals.clear()
        campaign_id = start_campaign(factory, settings, n)
        service.campaigns.wake()
        assert sink.wait_for(n, 30), f"only {len(sink.arrivals)} of {n} mails arrived"
        assert wait_until(lambda: campaign_row(factory, campaign_id).state == CampaignState.DONE, 10)
    finally:
        service.stop()
    with factory() as session:
        rows = session.execute(
            select(CampaignRecipient.released_at, CampaignRecipient.address)
            .where(CampaignRecipient.campaign_id == campaign_id)
            .order_by(CampaignRecipient.released_at, CampaignRecipient.id)).all()
    campaign = campaign_row(factory, campaign_id)
    # Every mail at the relay once, in the order the gate released them (the outbox sends the oldest first).
    assert [to for _, to, _ in sink.arrivals] == [to for _, to in rows]
    assert len({mid for _, _, mid in sink.arrivals}) == n  # each mail its own Message-ID
    assert outbox_states(factory) == {"sent": n + 1}

    released = [at for at, _ in rows]
    gaps = [round((b - a) / timedelta(milliseconds=1)) for a, b in itertools.pairwise(released)]
    arrivals = [round((b - a) * 1000) for (a, _, _), (b, _, _) in itertools.pairwise(sink.arrivals)]
    report = f"release gaps (ms): {gaps}; arrival gaps at the relay (ms): {arrivals}"
    gate, stalls = campaign.started_at, timedelta(0)  # the start opens the gate at once
    assert gate is not None
    for i, at in enumerate(released):
        assert at >= gate, f"release {i} came {(gate - at) / timedelta(milliseconds=1):.1f} ms early; {report}"
        if at - gate > 2 * step:
            stalls += at - gate
            gate = at + step
        else:
            gate += step
    assert campaign.next_send_at == gate, \
        f"the gate ended at {campaign.next_send_at}, by the rule at {gate} (stalls {stalls}); {report}"
    for i, first in enumerate(released):
        for j in range(i + 2, n):
            assert released[j] - first > (j - i - 2) * step, \
                f"releases {i}..{j} within {(released[j] - first) / timedelta(milliseconds=1):.0f} ms; {report}"


def test_kill_9_in_the_middle_of_sending(factory, settings, sink, tmp_path):
    """A serve process killed while the relay holds a mail it has accepted: after the restart every recipient has
    the campaign, the one mail in flight arrived twice at most, and its outbox row says it is uncertain."""
    n = 60
    sink.hold_at = 10  # the relay takes the 10th mail and answers only after the kill
    settings = _settings(settings, sink, 1200)
    campaign_id = start_campaign(factory, settings, n)

    def config(timeout: int) -> Path:
        return config_file(tmp_path, "serve", settings.database.url,
                           notifications=notifications(sink.port, timeout_seconds=timeout),
                           campaigns={"per_minute": 1200, "poll_seconds": 1}, smtp={"enabled": False})

    # The first process waits for the relay's answer far longer than the kill takes, however busy the machine
    # (a timeout first would be a failed attempt, retried only after five minutes).
    proc = serve(config(30), tmp_path / "serve.log")
    try:
        assert sink.held.wait(60), "the campaign did not start sending"
        proc.kill()
    finally:
        proc.ensure_gone()
        sink.release.set()
    kills = 1
    assert outbox_states(factory)["sent"] < n - 1  # killed in the middle of sending (and mostly of releasing)
    proc = serve(config(3), tmp_path / "serve.log")
    try:
        # The claim of the killed process expires after the restarted one's outbox lease (2 × 3 s + 5 s), then
        # it goes again.
        assert wait_until(lambda: outbox_states(factory) == {"sent": n}, 60), outbox_states(factory)
    finally:
        assert proc.stop() == 0
    per_address = sink.per_address()
    assert set(per_address) == {address(i) for i in range(n)}  # nobody skipped
    twice = {a for a, count in per_address.items() if count > 1}
    assert sum(per_address.values()) - n <= kills and len(twice) <= kills
    with factory() as session:
        uncertain = set(session.execute(select(OutgoingMail.to_address).where(OutgoingMail.uncertain.is_(True)))
                        .scalars())
    assert twice <= uncertain  # every duplicate is reported
    held_to = sink.arrivals[sink.hold_at - 1][1]
    assert held_to in uncertain
    assert campaign_row(factory, campaign_id).state == CampaignState.DONE
    assert ledger_states(factory, campaign_id) == {"released": n}
