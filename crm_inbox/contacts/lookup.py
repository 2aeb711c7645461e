"""A contact as a person names one (a form field, a command's argument): by its number or by an address."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_inbox.ids import is_id
from crm_inbox.mail.addresses import normalise_email
from crm_inbox.models import Contact, ContactEmail


def contacts_named_by(session: Session, ref: str | int) -> list[Contact]:
    """The contacts ``ref`` names: the one with that id when it is a number, else everyone who has that
    e-mail address (several people can share one, e.g. info@). The callers decide what none or several mean."""
    text = str(ref).strip()
    if text.isascii() and text.isdigit():  # "²" is a digit to Python but no id
        ident = int(text) if len(text) < 12 else 0
        contact = session.get(Contact, ident) if is_id(ident) else None  # beyond the id range: nobody
        return [contact] if contact is not None else []
    email = normalise_email(text) or text.lower()
    owners = select(ContactEmail.contact_id).where(ContactEmail.email == email)
    return list(session.execute(select(Contact).where(Contact.id.in_(owners)).order_by(Contact.id)).scalars())
