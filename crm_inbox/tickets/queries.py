"""What the pages and the API read about tickets: one definition of an open ticket, and the lists built on it.

A ticket merged into another lives on there: it is never listed or counted as open.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import Session

from crm_inbox.models import Ticket
from crm_inbox.tickets.policy import AWAITING_STAFF_STATES, OPEN_STATES


def is_open() -> ColumnElement[bool]:
    """New, open or pending (``policy.OPEN_STATES``), and not merged into another ticket."""
    return and_(Ticket.merged_into_id.is_(None), Ticket.state.in_(OPEN_STATES))


def awaiting_staff() -> ColumnElement[bool]:
    """New or open: the next move is ours (pending tickets wait for the customer)."""
    return and_(Ticket.merged_into_id.is_(None), Ticket.state.in_(AWAITING_STAFF_STATES))


def newest_first(query: Select[Ticket]) -> Select[Ticket]:
    return query.order_by(Ticket.updated_at.desc(), Ticket.id.desc())


def open_assigned_to(session: Session, staff_id: int, limit: int = 50) -> Sequence[Ticket]:
    """A staff member's open tickets, most recently changed first (the dashboard's "my tickets")."""
    return session.execute(newest_first(select(Ticket).where(is_open(), Ticket.assignee_id == staff_id))
                           .limit(limit)).scalars().all()


def unassigned_awaiting_staff_count(session: Session) -> int:
    """Tickets nobody has taken whose next move is ours (the dashboard's count)."""
    return session.execute(select(func.count()).select_from(Ticket).where(
        awaiting_staff(), Ticket.assignee_id.is_(None))).scalar_one()


def open_for_contact(session: Session, contact_id: int, limit: int = 50) -> Sequence[Ticket]:
    """A customer's open tickets, newest first (the customer page)."""
    return session.execute(select(Ticket).where(is_open(), Ticket.contact_id == contact_id)
                           .order_by(Ticket.id.desc()).limit(limit)).scalars().all()


def open_count(session: Session, contact_id: int) -> int:
    """How many open tickets a customer has (the screen pop)."""
    return session.execute(select(func.count()).select_from(Ticket).where(
        is_open(), Ticket.contact_id == contact_id)).scalar_one()
