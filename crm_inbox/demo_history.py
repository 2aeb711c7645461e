"""Ten months of history for the reports (issue #20): teams, tickets answered and closed (a few reopened), calls
with missed ones called back, deals won and lost with their reasons, orders and the ERP's invoices, and a
campaign sent with replies.

The rest of the demo lives in its last weeks; reports count per week and month and compare teams, so they need
a longer past and more people. Everything goes through the same services as real work, which stamp "now":
``backdated`` moves what one step wrote to the step's own time, ``Backdating`` many steps in one pass. The teams
are sized for the works-council rule ([analytics] min_group_size, 5): two teams large enough to show on their
own, two small ones that reports pool. The volume is sized for it too, so that the reports' default periods
show their figures: the everyday phone traffic (~35 calls a week, every missed one called back by customer
service in turn), a year of selling (~8 deals closed a month and every open stage, the six salespeople in turn),
phone requests logged as tickets. The everyday calls are written in bulk as the phone system's finished calls
(hundreds of calls through the calls service, event by event, would cost seconds on every demo).
"""

from __future__ import annotations

import functools
import random
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.calls.service import CallEvent, apply_event, call_details
from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.erp.invoices import InvoiceInput, put_invoice
from crm_inbox.intake.store import Envelope, accept
from crm_inbox.models import (
    AuditEntry,
    Call,
    CallState,
    Campaign,
    CampaignRecipient,
    CampaignState,
    Channel,
    Company,
    Contact,
    Direction,
    Event,
    Interaction,
    InteractionContact,
    InteractionKind,
    InteractionStaff,
    Invoice,
    Opportunity,
    Order,
    Product,
    Quote,
    RecipientState,
    Reminder,
    Role,
    StaffUser,
    Ticket,
    TicketEvent,
    TicketState,
    utcnow,
)
from crm_inbox.pipeline.runner import process
from crm_inbox.sales import opportunities, quotes
from crm_inbox.sales.inputs import LineFields, OpportunityChanges, OpportunityFields, QuoteFields
from crm_inbox.staff.service import add_staff
from crm_inbox.tickets import service as tickets
from crm_inbox.tickets.inputs import TicketChanges
from crm_inbox.timeline.service import record_interaction

HISTORY_DAYS = 300
TICKETS = 24
CALLS = 40  # besides the demo's recent ones; each takes a phone system's events (slow-ish)
DEALS = 18

# (name, local part, extension, team) of the people the demo adds; the first three demo users get a team too.
SERVICE_DE, SALES_DE, ACCOUNTS_DE, BOARD_DE = "Kundenservice", "Vertrieb", "Buchhaltung", "Geschäftsführung"
SERVICE_EN, SALES_EN, ACCOUNTS_EN, BOARD_EN = "Customer service", "Sales", "Accounts", "Management"
MORE_STAFF_DE = (
    ("Sabine Krause", "sabine.krause", "21", SERVICE_DE), ("Tobias Wendt", "tobias.wendt", "22", SERVICE_DE),
    ("Mehmet Yılmaz", "mehmet.yilmaz", "23", SERVICE_DE), ("Anja Richter", "anja.richter", "24", SERVICE_DE),
    ("Florian Brandt", "florian.brandt", "25", SERVICE_DE), ("Nina Scholz", "nina.scholz", "26", SERVICE_DE),
    ("Markus Lange", "markus.lange", "31", SALES_DE), ("Julia Engel", "julia.engel", "32", SALES_DE),
    ("Stefan Roth", "stefan.roth", "33", SALES_DE), ("Carina Adler", "carina.adler", "34", SALES_DE),
    ("Petra Kurz", "petra.kurz", "41", ACCOUNTS_DE), ("Holger Ebert", "holger.ebert", "42", ACCOUNTS_DE),
    ("Bernd Weber", "bernd.weber", "11", BOARD_DE), ("Claudia Neumann", "claudia.neumann", "10", BOARD_DE),
)
MORE_STAFF_EN = (
    ("Sophie Clarke", "sophie.clarke", "21", SERVICE_EN), ("Tom Fletcher", "tom.fletcher", "22", SERVICE_EN),
    ("Priya Shah", "priya.shah", "23", SERVICE_EN), ("Ben Harris", "ben.harris", "24", SERVICE_EN),
    ("Chloe Evans", "chloe.evans", "25", SERVICE_EN), ("Ryan Moore", "ryan.moore", "26", SERVICE_EN),
    ("Mark Lewis", "mark.lewis", "31", SALES_EN), ("Hannah Price", "hannah.price", "32", SALES_EN),
    ("Steve Cooper", "steve.cooper", "33", SALES_EN), ("Amy Ward", "amy.ward", "34", SALES_EN),
    ("Paul Knight", "paul.knight", "41", ACCOUNTS_EN), ("Helen Gray", "helen.gray", "42", ACCOUNTS_EN),
    ("Emma Taylor", "emma.taylor", "11", BOARD_EN), ("Oliver Grant", "oliver.grant", "10", BOARD_EN),
)
# The demo's first three users (admin, staff, read-only): the admin leads sales, the read-only user is in accounts.
FIRST_TEAMS = {"de": (SALES_DE, SALES_DE, ACCOUNTS_DE), "en": (SALES_EN, SALES_EN, ACCOUNTS_EN)}

TICKET_SUBJECTS = {
    "de": ("Lieferung unvollständig", "Rechnung falsch adressiert", "Ersatzteil gesucht", "Gerät zeigt Fehler E42",
           "Rücksendung vereinbaren", "Zugang zum Kundenportal", "Wartungstermin verschieben",
           "Beschädigte Verpackung", "Frage zur Gewährleistung", "Bedienungsanleitung fehlt"),
    "en": ("Delivery incomplete", "Invoice sent to the wrong address", "Looking for a spare part",
           "Unit shows error E42", "Arranging a return", "Access to the customer portal",
           "Moving the maintenance visit", "Damaged packaging", "Question about the warranty",
           "Manual missing"),
}
TICKET_REPLY = {"de": "Vielen Dank für Ihre Nachricht, wir kümmern uns darum.",
                "en": "Thank you for your message, we are on it."}
LOST_REASONS = {
    "de": ("Preis zu hoch", "Lieferzeit zu lang", "Wettbewerber gewählt", "Projekt verschoben", "Kein Budget"),
    "en": ("Price too high", "Delivery time too long", "Chose a competitor", "Project postponed", "No budget"),
}
DEAL_TITLES = {
    "de": ("Ersatzteilpaket", "Umrüstung Linie 2", "Schulung Bedienpersonal", "Rahmenvertrag Verschleißteile",
           "Neue Steuerung", "Jahreswartung", "Automatisierung Verpackung", "Sensorik-Nachrüstung"),
    "en": ("Spare parts package", "Refitting line 2", "Operator training", "Framework agreement wear parts",
           "New control system", "Annual maintenance", "Packaging automation", "Sensor retrofit"),
}
CAMPAIGN = {"de": ("Frühjahrsaktion Wartung", "Jetzt Wartung buchen: 10 % Frühbucherrabatt"),
            "en": ("Spring maintenance offer", "Book your maintenance now: 10% early-bird discount")}

# Columns a step sets itself (not "now"): left where they are when the step's rows are moved back.
_KEEP = frozenset({"close_date"})
# What each kind of step writes (with the timeline, audit log, outgoing events and reminders it causes).
TICKET_ROWS: tuple[Any, ...] = (Ticket, TicketEvent, Interaction, Reminder, AuditEntry, Event)
CALL_ROWS: tuple[Any, ...] = (Call, Interaction, Reminder, AuditEntry, Event)
DEAL_ROWS: tuple[Any, ...] = (Opportunity, Quote, Order, Interaction, Reminder, AuditEntry, Event)
INVOICE_ROWS: tuple[Any, ...] = (Invoice, Interaction, AuditEntry, Event)


@functools.cache
def _time_columns(model: Any) -> tuple[str, ...]:
    """The attributes of ``model`` that hold a time or a date (those a step's "now" may be in)."""
    return tuple(attr.key for attr in sa_inspect(model).column_attrs if attr.key not in _KEEP and (
        type(attr.columns[0].type).__name__ == "UTCDateTime"
        or getattr(attr.columns[0].type, "python_type", None) in (datetime, date)))


def _marks(session: Session, models: Sequence[Any]) -> dict[Any, int]:
    highest = session.execute(select(*(select(func.max(m.id)).scalar_subquery() for m in models))).one()
    return {model: mark or 0 for model, mark in zip(models, highest, strict=True)}


@contextmanager
def backdated(session: Session, when: datetime, models: Sequence[Any]) -> Iterator[None]:
    """Everything the block writes happened at ``when``: rows of ``models`` it adds or changes get every time
    the services stamped while it ran (at or after its start) moved back by the same amount; dates with it."""
    session.flush()
    start = utcnow()
    marks = _marks(session, models)
    yield
    _move_back(session, marks, [(start, when)])


class Backdating:
    """Many steps moved back in one pass at the end, each to its own time: what ``backdated`` does step by step,
    without a pass over the tables after every step (the bulk of the history). A time stamped during a step goes
    with that step; one still ahead at the end (a reminder's due time) with the step that wrote its row. No
    dates: a date goes with the last step begun on its day."""

    def __init__(self, session: Session, models: Sequence[Any]) -> None:
        session.flush()
        self.session = session
        self.models = models
        self.marks = _marks(session, models)
        self.steps: list[tuple[datetime, datetime]] = []  # (real start, the step's own time), in order
        self.step_marks: list[dict[Any, int]] = []  # the highest ids when each step began

    def step(self, when: datetime) -> None:
        """What the services write from here on, until the next step, happened at ``when``."""
        self.session.flush()
        self.step_marks.append(_marks(self.session, self.models))
        self.steps.append((utcnow(), when))

    def done(self) -> None:
        if self.steps:
            _move_back(self.session, self.marks, self.steps, self.step_marks)


def _move_back(session: Session, marks: dict[Any, int], steps: Sequence[tuple[datetime, datetime]],
               step_marks: Sequence[dict[Any, int]] = ()) -> None:
    """Each time stamped during a step (from its start to the next one's) moved back by that step's amount; a
    time still ahead when the last step ended by the amount of the step that added its row."""
    session.flush()
    starts = [start for start, _ in steps]
    first, ended = starts[0], utcnow()
    shifts = [when - start for start, when in steps]
    start_days = [start.date() for start in starts]
    day_shifts = [timedelta(days=(when.date() - start.date()).days) for start, when in steps]

    def moved(value: datetime, model: Any, row_id: int) -> datetime:
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        if aware < first:
            return value
        if aware < ended or not step_marks:
            step = bisect_right(starts, aware) - 1
        else:  # ahead: the step that added the row (a row from before the steps: the last step)
            step = max(0, bisect_left([m[model] for m in step_marks], row_id) - 1) if row_id > marks[model] \
                else len(steps) - 1
        return (aware + shifts[step]).replace(tzinfo=value.tzinfo)

    for model, mark in marks.items():
        touched = model.id > mark
        if hasattr(model, "updated_at"):
            touched = or_(touched, model.updated_at >= first)
        keys = _time_columns(model)
        for row in session.execute(select(model).where(touched)).scalars():
            for key in keys:
                value = getattr(row, key)
                if isinstance(value, datetime):
                    if (new := moved(value, model, row.id)) is not value:
                        setattr(row, key, new)
                elif isinstance(value, date) and value >= first.date():
                    setattr(row, key, value + day_shifts[bisect_right(start_days, value) - 1])
    if Interaction in marks:  # the timeline orders by the links' copy of the time
        for link in session.execute(select(InteractionContact).where(
                InteractionContact.interaction_id > marks[Interaction])).scalars():
            if (new := moved(link.occurred_at, Interaction, link.interaction_id)) is not link.occurred_at:
                link.occurred_at = new
    session.flush()


@dataclass(frozen=True)
class Teams:
    """Staff ids per team, the team names in order: service, sales, accounts, management."""
    names: tuple[str, str, str, str]
    members: dict[str, list[int]]
    extensions: dict[int, str]
    addresses: dict[int, str]
    names_of: dict[int, str]

    @property
    def service(self) -> list[int]:
        return self.members[self.names[0]]

    @property
    def sales(self) -> list[int]:
        return self.members[self.names[1]]

    def everyone(self) -> list[int]:
        return [i for ids in self.members.values() for i in ids]


def create_teams(session: Session, staff: Sequence[tuple[int, str, str, str]], domain: str,
                 language: str) -> Teams:
    """Teams for the demo's users, and the colleagues who fill them (they have no password: no logins)."""
    more = MORE_STAFF_EN if language == "en" else MORE_STAFF_DE
    names = (more[0][3], more[6][3], more[10][3], more[12][3])
    members: dict[str, list[int]] = {name: [] for name in names}
    extensions, addresses, names_of = {}, {}, {}
    for (user_id, name, address, ext), team in zip(staff, FIRST_TEAMS[language], strict=False):
        session.get_one(StaffUser, user_id).team = team
        members[team].append(user_id)
        extensions[user_id], addresses[user_id], names_of[user_id] = ext, address, name
    for name, local, ext, team in more:
        user = add_staff(session, f"{local}@{domain}", name, "staff", extension=ext, team=team)
        members[team].append(user.id)
        extensions[user.id], addresses[user.id], names_of[user.id] = ext, f"{local}@{domain}", name
    session.flush()
    return Teams(names, members, extensions, addresses, names_of)


def _days_back(rng: random.Random) -> float:
    """Days before now, more of them recent (reports default to the last 90 days), back to HISTORY_DAYS."""
    return 2 + (HISTORY_DAYS - 2) * rng.random() ** 1.8


def _moment(rng: random.Random, now: datetime, days_back: float) -> datetime:
    """A working-hours moment (Mon–Fri, 8–17 h UTC) about ``days_back`` days ago."""
    when = now - timedelta(days=days_back)
    while when.weekday() >= 5:
        when -= timedelta(days=1)
    return datetime.combine(when.date(), time(rng.randint(7, 16), rng.randint(0, 59), rng.randint(0, 59)),
                            tzinfo=UTC)


def _customers(session: Session) -> list[Contact]:
    return list(session.execute(select(Contact).where(Contact.company_id.is_not(None)).order_by(Contact.id))
                .scalars())


@dataclass(frozen=True)
class MailRoute:
    """How the demo's mail reaches the CRM: the support and CRM addresses, the relay it comes through."""
    support: str
    crm: str
    peer: str | None


def _mail(sender: tuple[str, str], recipient: tuple[str, str], subject: str, text: str, when: datetime,
          message_id: str, replying_to: str | None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{sender[0]} <{sender[1]}>"
    msg["To"] = f"{recipient[0]} <{recipient[1]}>"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = message_id
    if replying_to:
        msg["In-Reply-To"] = msg["References"] = replying_to
    msg.set_content(text)
    return bytes(msg)


def _deliver_at(factory: sessionmaker[Session], settings: Settings, route: MailRoute, when: datetime, raw: bytes,
                mail_from: str, rcpt: str) -> int | None:
    """One mail through the real core (stored, then processed) as if it came at ``when``; its ticket's id."""
    with factory() as session:
        start = utcnow()
        marks = _marks(session, TICKET_ROWS)
    with unit_of_work(factory) as session:
        inbound_id = accept(session, raw, Envelope(mail_from=mail_from, rcpt_to=(rcpt,), peer=route.peer,
                                                   source="demo")).inbound_id
    process(factory, settings, inbound_id)
    with unit_of_work(factory) as session:
        _move_back(session, marks, [(start, when)])
        return session.execute(select(Interaction.ticket_id).where(Interaction.inbound_message_id == inbound_id)
                               ).scalar_one_or_none()


LEAD_ORIGINS = ("web_form", "web_form", "mail", "call", "manual")


def date_contacts(session: Session, rng: random.Random, now: datetime) -> None:
    """When and how the demo's people came: customers, suppliers and debtors long ago from the old address
    book (an import), leads and prospects over the last months by web form, mail, call or typed in; a lead
    the pipeline made from a stranger's mail when that mail came."""
    first_contact: dict[int, datetime] = {contact_id: first for contact_id, first in session.execute(
        select(InteractionContact.contact_id, func.min(InteractionContact.occurred_at))
        .group_by(InteractionContact.contact_id))}
    for contact in session.execute(select(Contact).order_by(Contact.id)).scalars():
        if contact.origin == "mail" and contact.id in first_contact:
            contact.created_at = first_contact[contact.id]
        elif contact.origin == "demo":
            if contact.role in (Role.LEAD, Role.PROSPECT):
                came = _moment(rng, now, _days_back(rng))
                first = first_contact.get(contact.id)  # never after the first mail or call about them
                contact.created_at = min(came, first - timedelta(days=1)) if first is not None else came
                contact.origin = rng.choice(LEAD_ORIGINS)
            else:
                contact.created_at = _moment(rng, now, rng.uniform(HISTORY_DAYS + 30, 3 * 365))
                contact.origin = "import"
    session.flush()


def create_tickets(factory: sessionmaker[Session], settings: Settings, rng: random.Random, now: datetime,
                   teams: Teams, route: MailRoute, language: str) -> None:
    """Support requests over the months, by mail to the support address as customers write them: answered by
    customer service within hours (a BCC to the CRM), closed within days, some reopened by the customer's
    reply; the newest few still waiting. (The demo's one solved ticket, awaiting its closing, is a recent one.)"""
    with factory() as session:
        people = [(c.name or c.emails[0].email, c.emails[0].email) for c in _customers(session) if c.emails]
    subjects = TICKET_SUBJECTS[language]
    newest_first = sorted((_moment(rng, now, _days_back(rng)) for _ in range(TICKETS)), reverse=True)
    for index, opened in enumerate(newest_first):
        customer = rng.choice(people)
        # The newest go round the whole team: its figures stand on all its people in any recent period.
        agent = teams.service[index] if index < len(teams.service) else rng.choice(teams.service)
        staff = (teams.names_of[agent], teams.addresses[agent])
        subject = rng.choice(subjects)
        asked = f"<history-{index}.{int(opened.timestamp())}@{customer[1].split('@')[1]}>"
        ticket_id = _deliver_at(factory, settings, route, opened, _mail(
            customer, ("Support", route.support), subject, subject, opened, asked, None), customer[1], route.support)
        if ticket_id is None:
            continue
        with unit_of_work(factory) as session, backdated(session, opened, TICKET_ROWS):
            tickets.change(session, session.get_one(Ticket, ticket_id), None, TicketChanges(assignee_id=agent))
        answered = opened + timedelta(minutes=rng.choice((20, 45, 90, 180, 240, 600, 1300, 2900)))
        if answered > now:
            continue
        answer = f"<history-{index}-answer.{int(answered.timestamp())}@{staff[1].split('@')[1]}>"
        _deliver_at(factory, settings, route, answered, _mail(
            staff, customer, f"Re: {subject}", TICKET_REPLY[language], answered, answer, asked), staff[1], route.crm)
        solved = answered + timedelta(hours=rng.choice((2, 6, 20, 30, 50, 75, 120, 200)))
        if solved > now - timedelta(days=1) or index % 9 == 8:
            continue  # still waiting for the customer
        with unit_of_work(factory) as session, backdated(session, solved, TICKET_ROWS):
            tickets.change(session, session.get_one(Ticket, ticket_id), agent,
                           TicketChanges(state=TicketState.CLOSED.value))
        again = solved + timedelta(hours=rng.randint(5, 60))
        if index % 7 != 3 or again > now - timedelta(days=1):
            continue
        # The customer writes again: reopened, then closed for good.
        _deliver_at(factory, settings, route, again, _mail(
            customer, staff, f"Re: {subject}", subject, again,
            f"<history-{index}-again.{int(again.timestamp())}@{customer[1].split('@')[1]}>", answer),
            customer[1], route.crm)
        with unit_of_work(factory) as session, backdated(session, again + timedelta(hours=rng.randint(2, 30)),
                                                          TICKET_ROWS):
            tickets.change(session, session.get_one(Ticket, ticket_id), agent,
                           TicketChanges(state=TicketState.CLOSED.value))


# Requests customer service takes by phone and logs as tickets, since this many days ago (when they began to).
PHONE_TICKET_DAYS = 120
PHONE_TICKETS = 45
PHONE_TICKET_REPLY = {"de": "Rückruf: Lösung mit dem Kunden besprochen.",
                      "en": "Called back: went through the solution with the customer."}


def create_phone_tickets(session: Session, settings: Settings, rng: random.Random, now: datetime,
                         teams: Teams, language: str, call_subjects: Mapping[tuple[bool, bool], str]) -> None:
    """Requests taken on the phone and logged as tickets (over the last PHONE_TICKET_DAYS), by customer service
    in turn per customer category (so every category's figures stand on the whole team); the agent calls back
    with the answer (a phone system call, on the ticket: its first response), solved within hours to days, the
    newest few still open. Through the tickets service, moved back in one pass."""
    customers = [c for c in _customers(session) if c.phones and c.phones[0].e164]
    subjects = TICKET_SUBJECTS[language]
    turns: Counter[str] = Counter()
    lines: list[tuple[Interaction, Call]] = []
    steps = Backdating(session, TICKET_ROWS)
    for opened in sorted(_working_moment(rng, now - timedelta(days=rng.uniform(1, PHONE_TICKET_DAYS)))
                         for _ in range(PHONE_TICKETS)):
        contact = rng.choice(customers)
        category = str(contact.company.category if contact.company and contact.company.category
                       else contact.category)
        agent = teams.service[turns[category] % len(teams.service)]
        turns[category] += 1
        steps.step(opened)
        ticket = tickets.open_for_contact(session, settings, contact, rng.choice(subjects), agent)
        if ticket.assignee_id != agent:  # the customer's account manager had it: service takes it
            tickets.change(session, ticket, agent, TicketChanges(assignee_id=agent))
        answered = opened + timedelta(minutes=rng.choice((5, 15, 30, 60, 90)))
        steps.step(answered)
        line = record_interaction(
            session, kind=InteractionKind.CALL, direction=Direction.OUT, occurred_at=utcnow(),
            subject=call_subjects[(False, True)].format(name=contact.name), text=PHONE_TICKET_REPLY[language],
            contacts=[(contact, "callee")], staff_ids=[agent], created_by_id=agent)
        tickets.staff_reply(session, ticket, line, agent)
        call = finished_call(RoutineCall(f"ticket-{ticket.id}-back", answered, False, True, contact, agent,
                                         timedelta(seconds=rng.randint(120, 900))), teams.extensions[agent], rng)
        call.interaction_id = line.id
        session.add(call)
        lines.append((line, call))
        solved = opened + timedelta(hours=rng.choice((1, 3, 5, 20, 26, 48, 70, 120)))
        while office_closed(solved.date()) or solved.hour >= 17:  # on the next working morning
            solved = datetime.combine(solved.date() + timedelta(days=1), time(7, rng.randint(0, 59)), tzinfo=UTC)
        if solved > now - timedelta(hours=2):
            continue  # still open
        steps.step(solved)
        tickets.change(session, ticket, agent, TicketChanges(state=TicketState.CLOSED.value))
    steps.done()
    for line, call in lines:
        line.details = call_details(call)


def create_calls(session: Session, settings: Settings, rng: random.Random, now: datetime, teams: Teams,
                 subjects: Mapping[tuple[bool, bool], str]) -> None:
    """Phone calls over the months, mostly taken by customer service and sales; a missed call is usually
    called back within minutes to days, as a phone system's events report it."""
    people = [c for c in _customers(session) if c.phones]
    weights = {teams.names[0]: 6, teams.names[1]: 3, teams.names[2]: 1, teams.names[3]: 1}
    takers = [i for team, ids in teams.members.items() for i in ids for _ in range(weights[team])]
    everyone = teams.everyone()
    newest_first = sorted((_moment(rng, now, _days_back(rng)) for _ in range(CALLS)), reverse=True)
    # Everyone takes calls now and then (the newest, answered, go round all), most of them customer service.
    planned = [(at, everyone[i], True) if i < len(everyone) else (at, rng.choice(takers), False)
               for i, at in enumerate(newest_first)]
    # Applied oldest first, as a phone system reports them: a call-back completes the reminders of calls before it.
    for index, (at, staff_id, taken) in enumerate(reversed(planned)):
        contact = rng.choice(people)
        number = contact.phones[0].raw
        extension = teams.extensions[staff_id]
        inbound = rng.random() < 0.65
        answered = taken or rng.random() < (0.78 if inbound else 0.9)
        _call(session, settings, f"history-{index}", at, inbound, answered, number, extension, rng)
        _subject(session, f"history-{index}", subjects[(inbound, answered)].format(name=contact.name))
        if inbound and not answered:  # called back, sooner or later (the demo's recent ones still wait)
            back = at + timedelta(minutes=rng.choice((8, 25, 60, 150, 300, 1400, 4300)))
            if back < now:
                _call(session, settings, f"history-{index}-back", back, False, True, number,
                      rng.choice([e for i, e in teams.extensions.items() if i in teams.service]), rng)
                _subject(session, f"history-{index}-back", subjects[(False, True)].format(name=contact.name))


# The everyday phone traffic: calls per working day (Mon–Fri; Mondays busiest, Fridays short), at these UTC hours
# (8–18 h in Germany, a lunch dip), about one missed call a day (two on some Mondays), called back within hours.
ROUTINE_CALLS_A_DAY = (8, 7, 7, 7, 5)
CALL_HOURS = (7, 7, 8, 8, 8, 9, 9, 9, 10, 10, 10, 11, 11, 12, 13, 13, 14, 14, 14, 15, 15, 16)
CALL_BACK_AFTER = (6, 12, 20, 35, 50, 80, 120, 180, 300)  # minutes


def _easter(year: int) -> date:
    """Easter Sunday (the Gregorian computus)."""
    a, (b, c) = year % 19, divmod(year, 100)
    d, e = divmod(b, 4)
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday) // 451
    month, day = divmod(h + weekday - 7 * m + 114, 31)
    return date(year, month, day + 1)


def office_closed(day: date) -> bool:
    """Weekends, Germany's nationwide public holidays, and Christmas to New Year (the office is closed)."""
    easter = _easter(day.year)
    return (day.weekday() >= 5 or (day.month, day.day) in ((1, 1), (5, 1), (10, 3))
            or (day.month == 12 and day.day >= 24)
            or (day - easter).days in (-2, 1, 39, 50))


@dataclass(frozen=True)
class RoutineCall:
    call_id: str
    at: datetime
    inbound: bool
    answered: bool
    contact: Contact
    staff_id: int
    talk: timedelta


def plan_routine_calls(rng: random.Random, now: datetime, teams: Teams, people: Sequence[Contact],
                       weights: Sequence[int] | None = None) -> list[RoutineCall]:
    """The calls of every working day from HISTORY_DAYS ago to yesterday with ``people`` (as often as their
    ``weights``): taken mostly by customer service, now and then by sales or the others; each missed call called
    back by customer service in turn (whoever is free), minutes to a few hours later, the next morning when it
    came late."""
    shares = {teams.names[0]: 6, teams.names[1]: 2, teams.names[2]: 1, teams.names[3]: 1}
    takers = [i for team, ids in teams.members.items() for i in ids for _ in range(shares[team])]
    in_turn = list(teams.service)
    rng.shuffle(in_turn)
    turn = 0
    calls: list[RoutineCall] = []
    day, last = (now - timedelta(days=HISTORY_DAYS)).date(), (now - timedelta(days=1)).date()
    while day <= last:
        if office_closed(day):
            day += timedelta(days=1)
            continue
        missed = 1 + (day.weekday() == 0 and rng.random() < 0.6)
        for n in range(max(2, ROUTINE_CALLS_A_DAY[day.weekday()] + rng.randint(-2, 2))):
            at = datetime.combine(day, time(rng.choice(CALL_HOURS), rng.randint(0, 59), rng.randint(0, 59)),
                                  tzinfo=UTC)
            contact = rng.choices(people, weights)[0]
            talk = timedelta(seconds=rng.randint(40, 900))
            if n < missed:  # rang for customer service, nobody free
                calls.append(RoutineCall(f"routine-{len(calls)}", at, True, False, contact,
                                         rng.choice(teams.service), talk))
                back = at + timedelta(minutes=rng.choice(CALL_BACK_AFTER))
                if back.hour >= 17:  # first thing the next working day
                    following = day + timedelta(days=1)
                    while office_closed(following):
                        following += timedelta(days=1)
                    back = datetime.combine(following, time(7, rng.randint(5, 50)), tzinfo=UTC)
                if back < now - timedelta(hours=1):
                    calls.append(RoutineCall(f"routine-{len(calls)}", back, False, True, contact,
                                             in_turn[turn % len(in_turn)], talk))
                    turn += 1
                continue
            inbound = rng.random() < 0.68
            staff_id = rng.choice(takers)
            calls.append(RoutineCall(f"routine-{len(calls)}", at, inbound, inbound or rng.random() < 0.88,
                                     contact, staff_id, talk))
        day += timedelta(days=1)
    return calls


def finished_call(plan: RoutineCall, extension: str, rng: random.Random) -> Call:
    """The call as the phone system reported it when it ended (its events kept), not yet added."""
    number = plan.contact.phones[0].raw
    caller, callee = (number, extension) if plan.inbound else (extension, number)
    direction = Direction.IN if plan.inbound else Direction.OUT
    ring = timedelta(seconds=rng.randint(4, 25))
    ended = plan.at + ring + (plan.talk if plan.answered else timedelta(seconds=15))
    events = [CallEvent("demo", plan.call_id, "new", plan.at, direction=direction, from_number=caller,
                        to_number=callee)]
    if plan.answered:
        events.append(CallEvent("demo", plan.call_id, "answer", plan.at + ring, direction=direction,
                                from_number=caller, to_number=callee, extension=extension))
    events.append(CallEvent("demo", plan.call_id, "hangup", ended, direction=direction, from_number=caller,
                            to_number=callee, cause="normalClearing" if plan.answered else "noAnswer"))
    return Call(
        source="demo", call_id=plan.call_id, direction=direction, state=CallState.ENDED, from_raw=caller,
        to_raw=callee, remote_e164=plan.contact.phones[0].e164, remote_withheld=False, started_at=plan.at,
        answered_at=plan.at + ring if plan.answered else None, ended_at=ended,
        cause=events[-1].cause, missed=plan.inbound and not plan.answered, callback_needed=False,
        closed_by_timeout=False, staff_id=plan.staff_id, contact_id=plan.contact.id,
        company_id=plan.contact.company_id, events=[e.as_json() for e in events], updated_at=ended)


def create_routine_calls(session: Session, rng: random.Random, now: datetime, teams: Teams,
                         subjects: Mapping[tuple[bool, bool], str]) -> None:
    """The everyday calls (see ``plan_routine_calls``), hundreds of them: written in bulk as the phone system's
    finished calls (its events kept) with their lines on the timeline, not event by event through the calls
    service (that costs ~15 ms a call). None is owed a call-back: each missed one was called back, and nobody
    still owed one is called (the CRM would take that call as the call-back). Those who write most call most."""
    owed = set(session.execute(select(Call.contact_id).where(Call.callback_needed)).scalars())
    mails: dict[int, int] = {contact_id: n for contact_id, n in session.execute(
        select(InteractionContact.contact_id, func.count()).join(
            Interaction, Interaction.id == InteractionContact.interaction_id).where(
            Interaction.kind == InteractionKind.EMAIL).group_by(InteractionContact.contact_id))}
    people = [c for c in _customers(session) if c.phones and c.phones[0].e164 and c.id not in owed]
    planned = plan_routine_calls(rng, now, teams, people, [1 + mails.get(c.id, 0) for c in people])
    calls = [finished_call(plan, teams.extensions[plan.staff_id], rng) for plan in planned]
    call_table, line_table = Call.__table__, Interaction.__table__
    call_ids = session.execute(insert(call_table).returning(call_table.c.id, sort_by_parameter_order=True), [
        {column.key: getattr(call, column.key) for column in call_table.c if column.key != "id"}
        for call in calls]).scalars().all()
    for call, call_id in zip(calls, call_ids, strict=True):
        call.id = call_id  # for its details on the timeline
    lines = [{
        "kind": InteractionKind.CALL.value, "direction": (Direction.IN if plan.inbound else Direction.OUT).value,
        "occurred_at": call.started_at,
        "subject": (line := subjects[(plan.inbound, plan.answered)].format(name=plan.contact.name)), "text": line,
        "excerpt": line, "html": None, "source_ref": f"demo:{call.call_id}", "inbound_message_id": None,
        "company_id": call.company_id, "ticket_id": None, "details": call_details(call), "created_by_id": None,
        "attribution_reason": f"number {call.remote_e164} belongs to contact {call.contact_id}",
        "created_at": call.ended_at} for call, plan in zip(calls, planned, strict=True)]
    line_ids = session.execute(insert(line_table).returning(line_table.c.id, sort_by_parameter_order=True),
                               lines).scalars().all()
    session.execute(insert(InteractionContact.__table__), [
        {"interaction_id": i, "contact_id": c.contact_id, "occurred_at": c.started_at, "role": "caller"}
        for i, c in zip(line_ids, calls, strict=True)])
    session.execute(insert(InteractionStaff.__table__), [
        {"interaction_id": i, "staff_id": c.staff_id, "role": "participant"}
        for i, c in zip(line_ids, calls, strict=True)])
    session.execute(update(call_table).where(call_table.c.id == bindparam("call")).values(
        interaction_id=bindparam("line")).execution_options(synchronize_session=False),
        [{"call": c, "line": i} for c, i in zip(call_ids, line_ids, strict=True)])


def _subject(session: Session, call_id: str, subject: str) -> None:
    """The subject a colleague gives the call on the timeline (in the demo's language)."""
    interaction_id = session.execute(select(Call.interaction_id).where(Call.call_id == call_id)).scalar_one()
    if interaction_id is not None:
        interaction = session.get_one(Interaction, interaction_id)
        interaction.subject = interaction.excerpt = subject


def _call(session: Session, settings: Settings, call_id: str, at: datetime, inbound: bool, answered: bool,
          number: str, extension: str, rng: random.Random) -> None:
    caller, callee = (number, extension) if inbound else (extension, number)
    direction = Direction.IN if inbound else Direction.OUT

    def event(kind: Any, when: datetime, **more: Any) -> CallEvent:
        return CallEvent("demo", call_id, kind, when, direction=direction, from_number=caller, to_number=callee,
                         **more)

    ring = timedelta(seconds=rng.randint(4, 25))
    # The events carry their own times; a missed call's reminder, and the call that completes it (with its line
    # on the timeline), are written with "now".
    with backdated(session, at, CALL_ROWS):
        apply_event(session, settings, event("new", at))
        if answered:
            apply_event(session, settings, event("answer", at + ring, extension=extension))
            apply_event(session, settings, event("hangup", at + ring + timedelta(seconds=rng.randint(30, 900)),
                                                 cause="normalClearing"))
        else:
            apply_event(session, settings, event("hangup", at + ring + timedelta(seconds=15), cause="noAnswer"))


def create_deals(session: Session, settings: Settings, rng: random.Random, now: datetime, teams: Teams,
                 language: str) -> list[Order]:
    """Deals over the months through the stages: most won (quote accepted: an order) or lost with a reason;
    the newest still open. Returns the orders."""
    customers = _customers(session)
    products = list(session.execute(select(Product).order_by(Product.id)).scalars())
    stages = [s.key for s in opportunities.stages(settings) if s.is_open]
    orders = []
    for index in range(DEALS):
        contact = rng.choice(customers)
        owner = teams.sales[index % len(teams.sales)]
        created = _moment(rng, now, 18 + _days_back(rng))
        title = f"{rng.choice(DEAL_TITLES[language])} – {contact.company.name if contact.company else contact.name}"
        with backdated(session, created, DEAL_ROWS):
            opp = opportunities.create_opportunity(session, settings, OpportunityFields(
                title=title[:200], contact_id=contact.id, company_id=contact.company_id, owner_id=owner,
                close_date=(created + timedelta(days=rng.randint(30, 90))).date(), stage=stages[0],
                source=rng.choice(("mail", "call", "web_form", "manual", "campaign"))), by=owner)
        step = created
        for stage in stages[1:rng.randint(2, len(stages))]:
            step += timedelta(days=rng.randint(3, 20))
            if step >= now:
                break
            with backdated(session, step, DEAL_ROWS):
                opportunities.update_opportunity(session, settings, opp, OpportunityChanges(stage=stage), by=owner)
        end = step + timedelta(days=rng.randint(5, 30))
        if end >= now - timedelta(days=2) or index % 6 == 5:  # still open
            if opp.close_date is not None and opp.close_date < now.date():  # the expected close moved on
                with backdated(session, _working_moment(rng, now - timedelta(days=rng.randint(1, 6))), DEAL_ROWS):
                    opportunities.update_opportunity(session, settings, opp, OpportunityChanges(
                        close_date=(now + timedelta(days=rng.randint(10, 40))).date()), by=owner)
            continue
        if rng.random() < 0.55 and products:
            lines = tuple(LineFields(product_id=p.id, quantity=Decimal(rng.randint(1, 6)))
                          for p in rng.sample(products, min(len(products), rng.randint(1, 3))))
            with backdated(session, end - timedelta(days=3), DEAL_ROWS):
                quote = quotes.create_quote(session, settings, QuoteFields(opportunity_id=opp.id, lines=lines),
                                            by=owner)
                quote = quotes.finalise_quote(session, settings, quote, by=owner)
            with backdated(session, end, DEAL_ROWS):
                orders.append(quotes.accept_quote(session, settings, quote, by=owner))
        else:
            with backdated(session, end, DEAL_ROWS):
                opportunities.update_opportunity(session, settings, opp, OpportunityChanges(
                    stage=opportunities.LOST, lost_reason=rng.choice(LOST_REASONS[language])), by=owner)
    return orders


# The sales team's year besides the deals above: deals closed a month (won or lost), the amounts they are about.
DEALS_CLOSED_A_MONTH = 8
DEAL_AMOUNTS = (1800, 2400, 4800, 7500, 9800, 12000, 18500, 26000, 42000, 65000)
DEAL_SOURCES = ("mail", "call", "web_form", "manual", "campaign")
PIPELINE_ROWS: tuple[Any, ...] = (Opportunity, Interaction, Reminder, AuditEntry, Event)


def _working_moment(rng: random.Random, when: datetime) -> datetime:
    """The working-hours moment of ``when``'s day, or of the working day before it."""
    day = when.date()
    while office_closed(day):
        day -= timedelta(days=1)
    return datetime.combine(day, time(rng.randint(7, 15), rng.randint(0, 59)), tzinfo=UTC)


def create_pipeline(session: Session, settings: Settings, rng: random.Random, now: datetime, teams: Teams,
                    language: str) -> None:
    """A year of selling: about DEALS_CLOSED_A_MONTH deals closed each month, won (no quote: an order by phone)
    or lost with a reason, the owners in turn; and the open pipeline, every open stage with deals of each
    salesperson. Through the sales services like the deals above, without quotes (their PDFs are the cost),
    each step moved back to its own time in one pass at the end."""
    customers = _customers(session)
    owners = list(teams.sales)
    rng.shuffle(owners)
    stages = [s.key for s in opportunities.stages(settings) if s.is_open]
    reasons = LOST_REASONS[language]
    done: Counter[int] = Counter()  # deals per owner
    steps = Backdating(session, PIPELINE_ROWS)

    def deal(owner: int, nth: int, created: datetime, reached: int, moves: Sequence[datetime],
             close: date) -> Opportunity:
        contact = rng.choice(customers)
        company = contact.company.name if contact.company else contact.name
        steps.step(created)
        opp = opportunities.create_opportunity(session, settings, OpportunityFields(
            title=f"{rng.choice(DEAL_TITLES[language])} – {company}"[:200], contact_id=contact.id,
            company_id=contact.company_id, owner_id=owner, amount=Decimal(rng.choice(DEAL_AMOUNTS)),
            close_date=close, stage=stages[0],
            source=DEAL_SOURCES[nth % len(DEAL_SOURCES)]), by=owner)
        for stage, when in zip(stages[1:reached + 1], moves, strict=False):
            steps.step(when)
            opportunities.update_opportunity(session, settings, opp, OpportunityChanges(stage=stage), by=owner)
        done[owner] += 1
        return opp

    month = date(now.year - 1, now.month, 1)
    turn = 0
    while month <= now.date():
        for _ in range(DEALS_CLOSED_A_MONTH + rng.randint(-1, 2)):
            end = _working_moment(rng, datetime.combine(month, time(12), tzinfo=UTC)
                                  + timedelta(days=rng.uniform(0, 27)))
            if end > now - timedelta(days=1):
                continue
            owner = owners[turn % len(owners)]
            turn += 1
            # Each salesperson's deals go round the sources, won five then lost five (round the reasons):
            # every source, outcome and reason has deals of most of them.
            nth = done[owner] + 10 * owners.index(owner) // len(owners)  # not all winning at once
            created = _working_moment(rng, end - timedelta(days=rng.randint(12, 80)))
            reached = rng.randint(0, len(stages) - 1)
            gap = (end - created) / (reached + 2)
            opp = deal(owner, nth, created, reached,
                       [max(created, _working_moment(rng, created + gap * (i + 1))) for i in range(reached)],
                       (created + timedelta(days=rng.randint(30, 90))).date())
            steps.step(end)
            outcome = OpportunityChanges(stage=opportunities.WON) if (nth // 5) % 2 == 0 else OpportunityChanges(
                stage=opportunities.LOST, lost_reason=reasons[(nth + nth // 10) % len(reasons)])
            opportunities.update_opportunity(session, settings, opp, outcome, by=owner)
        month = (month + timedelta(days=32)).replace(day=1)
    for reached in range(len(stages)):  # what is on the table now, at every stage
        for owner in owners:
            created = _working_moment(rng, now - timedelta(days=rng.randint(6 + 8 * reached, 20 + 12 * reached)))
            gap = (now - timedelta(days=2) - created) / (reached + 1)
            deal(owner, done[owner], created, reached,
                 [max(created, _working_moment(rng, created + gap * (i + 1))) for i in range(reached)],
                 # the further on, the sooner expected: negotiations close within weeks
                 (now + timedelta(days=rng.randint(5, 20) + 14 * (len(stages) - 1 - reached))).date())
    steps.done()


def create_invoices(session: Session, settings: Settings, rng: random.Random, now: datetime,
                    orders: Sequence[Order]) -> None:
    """The ERP's invoices for the orders (and for repeat business without a deal in the CRM), paid or open."""
    numbered = [c for c in _customers(session) if c.company is not None and c.company.customer_number]
    items: list[tuple[date, Decimal, Contact | None, str | None]] = [
        (o.order_date + timedelta(days=rng.randint(3, 14)), o.net_total, None, o.number) for o in orders]
    for _ in range(24):
        items.append(((now - timedelta(days=rng.uniform(5, HISTORY_DAYS))).date(),
                      Decimal(rng.choice((480, 1250, 3900, 8700, 14500, 26000, 61000))), rng.choice(numbered), None))
    for index, (issued, net, contact, order_number) in enumerate(sorted(items, key=lambda i: i[0])):
        if issued >= now.date():
            continue
        order = next((o for o in orders if o.number == order_number), None)
        company = contact.company if contact is not None else (
            session.get(Company, order.company_id) if order is not None and order.company_id else None)
        if company is None or not company.customer_number:
            continue
        status = "paid" if issued < (now - timedelta(days=45)).date() or rng.random() < 0.4 else "open"
        with backdated(session, datetime.combine(issued, time(9), tzinfo=UTC), INVOICE_ROWS):
            put_invoice(session, settings, f"RE-{issued.year}-{5000 + index}", InvoiceInput(
                issued_on=issued, net=net, gross=(net * Decimal("1.19")).quantize(Decimal("0.01")),
                customer_number=company.customer_number, status=status, due_on=issued + timedelta(days=30),
                order_number=order_number), None)


def create_sent_campaign(session: Session, rng: random.Random, now: datetime, teams: Teams,
                         language: str) -> None:
    """A campaign sent in spring: released to the customers with an address, some replied, one bounced, one
    opted out (the mails themselves went long ago; only the ledger is kept)."""
    name, subject = CAMPAIGN[language]
    sent = _moment(rng, now, HISTORY_DAYS * 0.6)
    owner = teams.sales[0]
    campaign = Campaign(name=name, channel=Channel.EMAIL, state=CampaignState.DONE, subject=subject,
                        body=subject, created_by_id=owner, approved_by_id=owner, approved_at=sent, started_at=sent,
                        finished_at=sent + timedelta(hours=2), created_at=sent - timedelta(days=5), updated_at=sent)
    session.add(campaign)
    session.flush()
    people = [c for c in _customers(session) if c.emails]
    for index, contact in enumerate(people):
        released = sent + timedelta(seconds=10 * index)
        replied = released + timedelta(hours=rng.randint(2, 90)) if rng.random() < 0.18 else None
        session.add(CampaignRecipient(
            campaign_id=campaign.id, contact_id=contact.id, address=contact.emails[0].email,
            state=RecipientState.RELEASED, basis="existing_customer", released_at=released, replied_at=replied,
            bounced_at=released + timedelta(minutes=3) if index == 5 else None,
            opted_out_at=released + timedelta(days=1) if index == 9 else None))
    campaign.recipient_count = len(people)
    session.flush()


@dataclass(frozen=True)
class History:
    """The months before the demo's recent weeks, written in two parts around the rest of the demo: tickets and
    calls before its mail and calls (a recent call-back must find the older calls done, not the other way
    round), deals, invoices and the campaign after its sales (they need its products and customer numbers),
    the everyday calls last (they go to those who write most, and past those still owed a call-back)."""
    factory: sessionmaker[Session]
    settings: Settings
    rng: random.Random
    now: datetime
    language: str

    def before(self, staff: Sequence[tuple[int, str, str, str]], domain: str, route: MailRoute,
               call_subjects: Mapping[tuple[bool, bool], str]) -> Teams:
        with unit_of_work(self.factory) as session:
            teams = create_teams(session, staff, domain, self.language)
        create_tickets(self.factory, self.settings, self.rng, self.now, teams, route, self.language)
        with unit_of_work(self.factory) as session:
            create_calls(session, self.settings, self.rng, self.now, teams, call_subjects)
        return teams

    def after(self, session: Session, teams: Teams, call_subjects: Mapping[tuple[bool, bool], str]) -> None:
        # Customer service takes the support tickets (mail to the support address first goes to the customer's
        # account manager).
        waiting = session.execute(select(Ticket).where(Ticket.state != TicketState.CLOSED).order_by(Ticket.id))
        for index, ticket in enumerate(waiting.scalars()):
            if ticket.assignee_id not in teams.service:
                tickets.change(session, ticket, teams.service[0],
                               TicketChanges(assignee_id=teams.service[index % len(teams.service)]))
        date_contacts(session, self.rng, self.now)
        create_phone_tickets(session, self.settings, random.Random(self.rng.random()), self.now, teams,
                             self.language, call_subjects)
        orders = create_deals(session, self.settings, self.rng, self.now, teams, self.language)
        create_pipeline(session, self.settings, random.Random(self.rng.random()), self.now, teams, self.language)
        create_invoices(session, self.settings, self.rng, self.now, orders)
        create_sent_campaign(session, self.rng, self.now, teams, self.language)
        # Last: the demo's own calls are in, and who owes whom a call-back is known.
        create_routine_calls(session, random.Random(self.rng.random()), self.now, teams, call_subjects)
