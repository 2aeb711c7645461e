"""The lists staff read page by page: contacts and companies in dictionary order, with when each was last in
touch, and the names of the people an interaction is about.

Dictionary order is the reader's, not the database's: "Bärbel" comes before "Björn" (a database collation sorts
ä after z, and differs between SQLite and PostgreSQL). Without ICU (not installed; Babel has no collator) the
key folds accents and umlauts to their base letter (NFKD), ß to ss, and case, which is DIN 5007's rule 1 for
German names and right for most European ones; equal keys keep a stable order (the exact spelling, then id).
So the order is decided in Python over the (id, name) pairs of the whole list, and only one page is loaded.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, selectinload

from crm_inbox.models import Company, Contact, Interaction, InteractionContact


def collation_key(text: str) -> str:
    """``text`` as a dictionary sorts it: without accents (ä → a, é → e), ß as ss, case ignored."""
    decomposed = unicodedata.normalize("NFKD", text.replace("ß", "ss").replace("ẞ", "SS"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def name_order(name: str | None, ident: int) -> tuple[bool, str, str, int]:
    """Sort key of a named row: by dictionary order, nameless rows last, then the exact spelling, then oldest."""
    text = " ".join((name or "").split())
    return (not text, collation_key(text), text.casefold(), ident)


def page_of(rows: Iterable[tuple[int, str | None]], page: int, size: int) -> tuple[list[int], bool]:
    """The ids on page ``page`` (from 1) of ``rows`` in dictionary order, and whether another page follows."""
    ordered = sorted(rows, key=lambda row: name_order(row[1], row[0]))
    start = (page - 1) * size
    return [ident for ident, _name in ordered[start:start + size]], len(ordered) > start + size


@dataclass(frozen=True)
class ContactRow:
    contact: Contact
    last_contact: datetime | None


@dataclass(frozen=True)
class CompanyRow:
    company: Company
    people: int
    last_contact: datetime | None


def _last_contact_of_people(session: Session, contact_ids: Sequence[int]) -> dict[int, datetime]:
    rows = session.execute(select(InteractionContact.contact_id, func.max(InteractionContact.occurred_at))
                           .where(InteractionContact.contact_id.in_(contact_ids))
                           .group_by(InteractionContact.contact_id)).all()
    return {ident: when for ident, when in rows if when is not None}


def contacts_page(session: Session, matches: ColumnElement[bool] | None, page: int,
                  size: int) -> tuple[list[ContactRow], bool]:
    """A page of the contacts that ``matches`` (all without it), with e-mail, phone, company and last contact."""
    names = select(Contact.id, Contact.name)
    if matches is not None:
        names = names.where(matches)
    ids, has_next = page_of(session.execute(names).all(), page, size)
    loaded = {c.id: c for c in session.execute(select(Contact).where(Contact.id.in_(ids)).options(
        selectinload(Contact.emails), selectinload(Contact.phones), selectinload(Contact.company))).scalars()}
    last = _last_contact_of_people(session, ids)
    return [ContactRow(loaded[i], last.get(i)) for i in ids if i in loaded], has_next


def companies_page(session: Session, matches: ColumnElement[bool] | None, page: int,
                   size: int) -> tuple[list[CompanyRow], bool]:
    """A page of the companies that ``matches`` (all without it) with their mail domains, how many people they
    have and when anybody there (or the company itself, e.g. a call to the switchboard) was last in touch."""
    names = select(Company.id, Company.name)
    if matches is not None:
        names = names.where(matches)
    ids, has_next = page_of(session.execute(names).all(), page, size)
    loaded = {c.id: c for c in session.execute(
        select(Company).where(Company.id.in_(ids)).options(selectinload(Company.domains))).scalars()}
    people = dict(session.execute(select(Contact.company_id, func.count()).where(Contact.company_id.in_(ids))
                                  .group_by(Contact.company_id)).all())
    via_people = session.execute(
        select(Contact.company_id, func.max(InteractionContact.occurred_at))
        .join(InteractionContact, InteractionContact.contact_id == Contact.id)
        .where(Contact.company_id.in_(ids)).group_by(Contact.company_id)).all()
    direct = session.execute(select(Interaction.company_id, func.max(Interaction.occurred_at))
                             .where(Interaction.company_id.in_(ids)).group_by(Interaction.company_id)).all()
    last: dict[int, datetime] = {}
    for ident, when in [*via_people, *direct]:
        if ident is not None and when is not None and (ident not in last or when > last[ident]):
            last[ident] = when
    return [CompanyRow(loaded[i], people.get(i, 0), last.get(i)) for i in ids if i in loaded], has_next


def people_of(session: Session, interaction_ids: Sequence[int]) -> dict[int, list[tuple[int, str]]]:
    """For each interaction, the people it is about: (contact id, name as shown), in dictionary order."""
    links = session.execute(select(InteractionContact.interaction_id, InteractionContact.contact_id)
                            .where(InteractionContact.interaction_id.in_(interaction_ids))).all()
    contacts = {c.id: c for c in session.execute(select(Contact).where(
        Contact.id.in_({contact_id for _i, contact_id in links})).options(selectinload(Contact.emails))).scalars()}
    people: dict[int, list[tuple[int, str]]] = {}
    for interaction_id, contact_id in links:
        people.setdefault(interaction_id, []).append((contact_id, contacts[contact_id].display_name))
    for names in people.values():
        names.sort(key=lambda pair: name_order(pair[1], pair[0]))
    return people
