"""Support tickets for staff: the list (by state, mine, nobody's) and one ticket with its thread, changes,
internal notes and merging."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.contacts.inputs import NOT_GIVEN
from crm_inbox.errors import ValidationError
from crm_inbox.models import Contact, Interaction, Priority, StaffUser, Ticket, TicketEvent, TicketState
from crm_inbox.tickets import queries, service
from crm_inbox.tickets.inputs import TicketChanges
from web.auth import current_user, editor_id
from web.pages.blueprint import pages
from web.requestdb import db, row_or_404, state


@pages.get("/tickets")
def tickets() -> str:
    user = current_user()
    assert user is not None
    state = request.args.get("state", "open")
    whose = request.args.get("whose", "all")
    query = select(Ticket).where(Ticket.merged_into_id.is_(None))
    if state == "open":  # the page's default: new, open or pending (TicketState.OPEN alone is not offered)
        query = query.where(queries.is_open())
    elif state in {s.value for s in TicketState}:
        query = query.where(Ticket.state == TicketState(state))
    if whose == "mine":
        query = query.where(Ticket.assignee_id == user.id)
    elif whose == "nobody":
        query = query.where(Ticket.assignee_id.is_(None))
    rows = db().execute(queries.newest_first(query).limit(200)).scalars().all()
    contact_ids = {t.contact_id for t in rows if t.contact_id}
    names = {c.id: c.display_name for c in db().execute(select(Contact).where(Contact.id.in_(contact_ids))).scalars()}
    staff = {u.id: u.name for u in db().execute(select(StaffUser)).scalars()}
    return render_template("tickets.html", tickets=rows, names=names, staff=staff, state=state, whose=whose,
                           states=[s.value for s in TicketState])


@pages.get("/tickets/<int:ticket_id>")
def ticket(ticket_id: int) -> str:
    item = row_or_404(Ticket, ticket_id)
    thread = db().execute(select(Interaction).where(Interaction.ticket_id == item.id)
                          .order_by(Interaction.occurred_at, Interaction.id)).scalars().all()
    events = db().execute(select(TicketEvent).where(TicketEvent.ticket_id == item.id)
                          .order_by(TicketEvent.at, TicketEvent.id)).scalars().all()
    staff = db().execute(select(StaffUser).where(StaffUser.active).order_by(StaffUser.name)).scalars().all()
    contact = db().get(Contact, item.contact_id) if item.contact_id else None
    return render_template("ticket.html", ticket=item, thread=thread, events=events, staff=staff,
                           contact=contact, states=[s.value for s in TicketState],
                           priorities=[p.value for p in Priority])


@pages.post("/tickets/<int:ticket_id>/change")
def ticket_change(ticket_id: int) -> BaseResponse:
    by = editor_id()
    item = row_or_404(Ticket, ticket_id)
    form = request.form
    raw_assignee = form.get("assignee_id")
    wanted = TicketChanges(
        state=form.get("state") or NOT_GIVEN, priority=form.get("priority") or NOT_GIVEN,
        assignee_id=NOT_GIVEN if raw_assignee is None else int(raw_assignee) if raw_assignee.isdecimal() else None)
    try:
        changed = service.change(db(), item, by, wanted)
    except ValidationError as exc:
        flash(_("Not changed: %(field)s %(why)s", field=exc.field, why=exc.message))
    else:
        flash(_("Saved: %(what)s", what=", ".join(f"{k} → {v}" for k, v in changed.items())) if changed
              else _("Nothing changed."))
    return redirect(url_for("pages.ticket", ticket_id=ticket_id))


@pages.post("/tickets/<int:ticket_id>/notes")
def ticket_note(ticket_id: int) -> BaseResponse:
    by = editor_id()
    try:
        service.add_note(db(), row_or_404(Ticket, ticket_id), by, request.form.get("text", ""))
    except ValidationError as exc:
        flash(_("No note added: %(why)s", why=exc.message))
    return redirect(url_for("pages.ticket", ticket_id=ticket_id))


@pages.post("/contacts/<int:contact_id>/tickets")
def contact_open_ticket(contact_id: int) -> BaseResponse:
    """A ticket opened by staff for this customer (a phone request, say), assigned to whoever opens it."""
    by = editor_id()
    contact = row_or_404(Contact, contact_id)
    subject = " ".join(request.form.get("subject", "").split())[:998]
    if not subject:
        flash(_("No ticket opened: a subject is needed."))
        return redirect(url_for("pages.contact", contact_id=contact_id))
    item = service.open_for_contact(db(), state().settings, contact, subject, by)
    return redirect(url_for("pages.ticket", ticket_id=item.id))


@pages.post("/tickets/<int:ticket_id>/merge")
def ticket_merge(ticket_id: int) -> BaseResponse:
    by = editor_id()
    source = row_or_404(Ticket, ticket_id)
    number = request.form.get("target", "").strip().lstrip("#")
    target = db().execute(select(Ticket).where(Ticket.number == int(number))).scalar_one_or_none() \
        if number.isdigit() and len(number) < 12 else None
    if target is None:
        flash(_("No ticket #%(number)s.", number=number))
        return redirect(url_for("pages.ticket", ticket_id=ticket_id))
    try:
        service.merge(db(), source, target, by)
    except ValidationError as exc:
        flash(_("Not merged: %(why)s", why=exc.message))
        return redirect(url_for("pages.ticket", ticket_id=ticket_id))
    flash(_("%(source)s merged into %(target)s.", source=source.label, target=target.label))
    return redirect(url_for("pages.ticket", ticket_id=target.id))
