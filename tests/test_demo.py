"""The demo: believable data through the real core, and a login that works."""

from __future__ import annotations

import re
import time

from sqlalchemy import func, select

from crm_inbox.demo import DemoLogin, build_demo, is_empty
from crm_inbox.models import (
    Attachment,
    Company,
    Contact,
    InboundMessage,
    InboundState,
    Interaction,
    InteractionContact,
    InteractionKind,
)


def count(session, *where, model=Interaction) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(model).where(*where))


def test_demo_fills_an_empty_database_and_its_login_works(factory, settings, client):
    with factory() as session:
        assert is_empty(session)

    started = time.monotonic()
    login = build_demo(factory, settings)
    took = time.monotonic() - started
    assert isinstance(login, DemoLogin)
    assert login.email.endswith("@" + settings.mail.staff_domains[0])
    assert took < 60  # about 3 s on SQLite; generous for slow CI disks

    with factory() as session:
        assert not is_empty(session)
        assert count(session, model=Company) >= 12
        assert count(session, model=Contact) >= 45
        mails = count(session, Interaction.kind == InteractionKind.EMAIL)
        assert mails >= 250
        # every mail went through intake and processing, none failed or was skipped
        assert count(session, model=InboundMessage) == mails
        assert count(session, InboundMessage.state != InboundState.PROCESSED, model=InboundMessage) == 0
        assert count(session, Interaction.kind == InteractionKind.EMAIL,
                     Interaction.inbound_message_id.is_(None)) == 0
        assert count(session, Interaction.kind == InteractionKind.CALL) >= 60
        assert count(session, Interaction.kind == InteractionKind.NOTE) >= 20
        assert count(session, Interaction.html.is_not(None)) >= 1
        assert count(session, model=Attachment) >= 5
        # everything shows up on somebody's timeline
        assert count(session, ~Interaction.id.in_(select(InteractionContact.interaction_id))) == 0
        busiest = session.execute(
            select(InteractionContact.contact_id).group_by(InteractionContact.contact_id)
            .order_by(func.count().desc(), InteractionContact.contact_id).limit(1)).scalar_one()
        some_company = session.execute(select(Company.id).order_by(Company.id).limit(1)).scalar_one()

    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = client.post("/login", data={"email": login.email, "password": login.password,
                                           "csrf_token": token.group(1)})
    assert response.status_code == 302 and response.headers["Location"] == "/contacts"

    listing = client.get("/contacts").get_data(as_text=True)
    assert "Katrin Vogel" in listing  # the admin is logged in
    assert "Next" in listing  # more than one page of people
    assert "Müller Maschinenbau GmbH" in client.get(f"/companies/{some_company}").get_data(as_text=True)

    timeline = client.get(f"/contacts/{busiest}").get_data(as_text=True)
    assert "email" in timeline and "Full mail" in timeline
    assert timeline.count('class="item kind-') >= 10  # a busy contact has a real history

    # the umlauts and free-mail people are there, and phone numbers are findable however typed
    assert "gmx.de" in client.get("/contacts", query_string={"q": "gmx.de"}).get_data(as_text=True)


def test_the_same_seed_gives_the_same_people_and_mail(factory, settings, tmp_path):
    from crm_inbox.config import replace
    from crm_inbox.db import make_engine, make_sessionmaker, upgrade

    def snapshot(some_factory):  # type: ignore[no-untyped-def]
        with some_factory() as session:
            return (sorted(session.execute(select(Contact.name)).scalars(), key=str),
                    sorted(session.execute(select(Interaction.subject)).scalars(), key=str))

    first = build_demo(factory, settings, seed=3)
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = make_engine(other_url)
    try:
        upgrade(engine)
        second = build_demo(make_sessionmaker(engine), replace(settings, database={"url": other_url}), seed=3)
        assert snapshot(factory) == snapshot(make_sessionmaker(engine))
    finally:
        engine.dispose()
    assert first.email == second.email
    assert first.password != second.password  # never a well-known demo password
