"""Staff pages, server-rendered: login, contact list and search, contact and company pages, mail view.

Every page but /login and /healthz needs a logged-in staff user; every POST needs the CSRF token.
Mail content is only ever shown escaped (autoescape), and mail HTML only inside a sandboxed frame
served with its own restrictive Content-Security-Policy.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Response, abort, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox import audit
from crm_inbox.contacts.csv_export import contacts_csv as contacts_csv_text
from crm_inbox.contacts.merge import merge_contacts
from crm_inbox.contacts.search import (
    MAX_QUERY,
    company_matches,
    contact_matches,
    contacts_by_name,
    query_text,
    subject_matches,
)
from crm_inbox.errors import BadCursor, ValidationError
from crm_inbox.ids import MAX_ID
from crm_inbox.models import (
    Attachment,
    Category,
    Company,
    Contact,
    ContactEmail,
    CustomerType,
    Interaction,
    InteractionContact,
    InteractionKind,
    InteractionStaff,
    Reminder,
    Role,
    StaffRole,
    StaffUser,
    Ticket,
    TicketState,
    utcnow,
)
from crm_inbox.models.reminders import ACTIVE_STATES
from crm_inbox.privacy.service import audit_mail_view
from crm_inbox.staff import login_limits
from crm_inbox.staff.login_limits import LoginPolicy
from crm_inbox.staff.service import (
    check_password,
    end_session,
    find_staff,
    hash_password,
    open_session,
    user_for_session,
)
from crm_inbox.text import shorten
from crm_inbox.timeline.service import add_note, company_timeline, contact_timeline
from web.downloads import attachment_response, csv_response
from web.i18n import N_, local_time
from web.pages import csrf, pages
from web.requestdb import db, state

T = TypeVar("T")
PAGE_SIZE = 50
TIMELINE_PAGE = 25
PUBLIC_ENDPOINTS = frozenset({"pages.login", "pages.healthz"})
# Mail HTML is shown in <iframe sandbox>; this policy also holds if the URL is opened directly.
MAIL_HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
_dummy_hash: str | None = None
KIND_LABELS = {"email": N_("mail"), "call": N_("call"), "note": N_("note"), "document": N_("document"),
               "meeting": N_("meeting"), "ticket": N_("ticket"), "reminder": N_("reminder"), "other": N_("other")}
ROLE_LABELS = {"admin": N_("admin"), "staff": N_("staff"), "readonly": N_("read-only")}
DIRECTION_LABELS = {"in": N_("incoming"), "out": N_("outgoing"), "internal": N_("internal")}


@pages.get("/healthz")
def healthz() -> tuple[str, int]:
    return "ok", 200


# --- who is logged in ---------------------------------------------------------------------------------

SESSION_KEY = "login"  # the cookie's key of the login's row in staff_sessions


def current_user() -> StaffUser | None:
    """The user of this browser's login, while the login lasts on the server (see staff.open_session)."""
    if "page_user" not in g:
        g.page_user = user_for_session(db(), session.get(SESSION_KEY))
    return g.page_user


def _safe_next(value: str | None) -> str:
    """Only a path on this site: never another host (``//evil``, ``/\\evil``, ``https://…``)."""
    default = url_for("pages.contacts")
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def _here() -> str:
    return request.full_path if request.query_string else request.path


@pages.before_request
def guard() -> BaseResponse | None:
    if request.method == "POST":
        csrf.check()
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if current_user() is None:
        return redirect(url_for("pages.login", next=_here()))
    return None


def editor_id() -> int:
    """The logged-in user's id when they may change things; 403 for read-only users."""
    user = current_user()
    if user is None or user.role == StaffRole.READONLY:
        abort(403)
    return user.id


def editor_or_reader_id() -> int | None:
    user = current_user()
    return user.id if user else None


def row_or_404(model: type[T], ident: int) -> T:
    row = db().get(model, ident) if ident <= MAX_ID else None
    if row is None:
        abort(404)
    return row


@pages.context_processor
def template_helpers() -> dict[str, Any]:
    return {"csrf_field": csrf.field, "current_user": current_user, "local_time": shown_time,
            "kind_label": lambda kind: _(KIND_LABELS.get(kind, kind)),
            "direction_label": lambda direction: _(DIRECTION_LABELS.get(direction, direction)),
            "role_label": lambda role: _(ROLE_LABELS.get(role, role))}


def shown_time(value: datetime | None) -> str:
    """The local time; the stored UTC value where converting overflows (rows from year 9999 exist): a page
    never fails on a stored time."""
    try:
        return local_time(value)
    except (OverflowError, ValueError):
        return f"{value:%Y-%m-%d %H:%M} UTC" if value is not None else ""


@pages.app_template_filter("when")
def format_when(value: datetime | None) -> str:
    return shown_time(value)


@pages.app_template_filter("iso_when")
def format_iso_when(value: Any) -> str:
    """A time kept as ISO text (in an interaction's details), shown like any other."""
    try:
        return shown_time(datetime.fromisoformat(value)) if isinstance(value, str) else ""
    except ValueError:
        return ""


@pages.app_template_filter("duration")
def format_duration(seconds: Any) -> str:
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
        return ""
    return f"{seconds // 60}:{seconds % 60:02d} min"


@pages.app_template_filter("filesize")
def format_size(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.0f} KB" if size < 1024 * 1024 else f"{size / 2**20:.1f} MB"


@pages.app_template_filter("short")
def format_short(text: str | None) -> str:
    """A subject or title as lists show it: at most 200 characters (the record's own page shows all)."""
    return shorten(text)


# --- login / logout -----------------------------------------------------------------------------------

def _verify(email: str, password: str) -> StaffUser | None:
    global _dummy_hash
    user = find_staff(db(), email) if email.strip() and password else None
    if user is None:
        # As slow as a real check, so response times do not tell which addresses exist.
        if _dummy_hash is None:
            _dummy_hash = hash_password("not a password")
        check_password(StaffUser(password_hash=_dummy_hash, active=True), password)
        return None
    return user if check_password(user, password) else None


@pages.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | str:
    """Failed attempts are counted per address and client (and per client) in the database: see login_limits."""
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user() is not None:
            return redirect(next_url)
        return render_template("login.html", next_url=next_url, email="", error=None)
    email = request.form.get("email", "")
    account, client = email.strip().lower()[:320], (request.remote_addr or "unknown")[:100]
    policy = LoginPolicy.from_settings(state().settings.web)
    wait = login_limits.blocked_for(db(), policy, account, client, utcnow())
    if wait is not None:
        # Checked before the password, so a blocked client learns nothing and costs no hashing.
        minutes = max(1, math.ceil(wait.total_seconds() / 60))
        page = render_template("login.html", next_url=next_url, email=email, error=_(
            "Too many failed log-ins. Please try again in %(minutes)d minutes.", minutes=minutes))
        return Response(page, status=429, headers={"Retry-After": str(math.ceil(wait.total_seconds()))})
    user = _verify(email, request.form.get("password", ""))
    if user is None:
        login_limits.record_failure(db(), policy, account, client, utcnow())
        return render_template("login.html", next_url=next_url, email=email,
                               error=_("Wrong e-mail address or password."))
    login_limits.clear(db(), account, client)
    session.clear()
    session[SESSION_KEY] = open_session(db(), user)
    csrf.renew()
    return redirect(next_url)


@pages.post("/logout")
def logout() -> BaseResponse:
    """Ends this login on the server too: a copy of the cookie taken before is worthless afterwards."""
    end_session(db(), session.get(SESSION_KEY))
    session.clear()
    csrf.renew()
    return redirect(url_for("pages.login"))


# --- contacts and companies ---------------------------------------------------------------------------

@pages.get("/")
def index() -> BaseResponse:
    return redirect(url_for("pages.dashboard"))


def contact_search(q: str) -> ColumnElement[bool]:
    """The one contact search (crm_inbox.contacts.search), with this installation's phone region."""
    return contact_matches(q, state().settings.phone.default_region)


def search_query() -> str:
    """``?q=`` as typed; a ValidationError when it is longer than anybody types (see crm_inbox.contacts.search)."""
    return query_text(request.args.get("q"))


def too_long_text() -> str:
    return _("The search is too long: at most %(count)d characters.", count=MAX_QUERY)


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return min(int(raw), 100_000) if raw.isdigit() and int(raw) > 0 else 1


@pages.get("/contacts")
def contacts() -> str | tuple[str, int]:
    try:
        q = search_query()
    except ValidationError:
        return render_template("contacts.html", contacts=[], companies=[], q="", page=1, has_next=False,
                               error=too_long_text()), 400
    page = _page_number()
    query = select(Contact).options(selectinload(Contact.emails), selectinload(Contact.company))
    if q:
        query = query.where(contact_search(q))
    rows = db().execute(contacts_by_name(query).limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).scalars().all()
    firms = db().execute(select(Company).where(company_matches(q)).options(selectinload(Company.domains))
                         .order_by(Company.search_name).limit(20)).scalars().all() if q and page == 1 else []
    return render_template("contacts.html", contacts=rows[:PAGE_SIZE], companies=firms, q=q, page=page,
                           has_next=len(rows) > PAGE_SIZE, error=None)


SUGGESTIONS = 8


@pages.get("/contacts/suggest")
def contact_suggest() -> Response | tuple[Response, int]:
    """Search as you type: the first contacts that match, for a field that asks "which contact?"."""
    try:
        q = search_query()
    except ValidationError:
        return jsonify({"items": [], "error": too_long_text()}), 400
    rows = db().execute(contacts_by_name(
        select(Contact).where(contact_search(q)).options(selectinload(Contact.emails), selectinload(Contact.company))
    ).limit(SUGGESTIONS)).scalars().all() if len(q) >= 2 else []
    items = [{"id": c.id, "label": " · ".join(filter(None, [
        c.display_name, c.company.name if c.company else None, c.emails[0].email if c.emails else None]))}
        for c in rows]
    return jsonify({"items": items})


@pages.get("/contacts.csv")
def contacts_csv() -> Response:
    """The contact list (with the search's filter) as a spreadsheet file; read-only users may export too.
    Every export is written to the audit log: who, when, what filter, how many."""
    try:
        q = search_query()
    except ValidationError:
        abort(400, description=too_long_text())
    query = select(Contact).options(selectinload(Contact.emails), selectinload(Contact.phones),
                                    selectinload(Contact.company), selectinload(Contact.owner))
    if q:
        query = query.where(contact_search(q))
    rows = db().execute(contacts_by_name(query)).scalars().all()
    user = current_user()
    assert user is not None  # the blueprint's guard
    audit.record(db(), user.id, "export", "contact", None, {"format": "csv", "query": q, "count": len(rows)})
    return csv_response(contacts_csv_text(rows), "contacts.csv")


@pages.get("/search/mail")
def search_mail() -> str | tuple[str, int]:
    """Mail and other interactions by subject. Apart from the main search because it reads every subject
    (no index helps a "contains" search): asked for on purpose, newest first, at most 50."""
    try:
        q = search_query()
    except ValidationError:
        return render_template("search_mail.html", q="", items=[], error=too_long_text()), 400
    items = db().execute(select(Interaction).where(subject_matches(q))
                         .order_by(Interaction.occurred_at.desc(), Interaction.id.desc()).limit(50)
                         ).scalars().all() if len(q) >= 3 else []
    return render_template("search_mail.html", q=q, items=items, error=None)


@pages.get("/contacts/<int:contact_id>")
def contact(contact_id: int) -> str:
    person = db().get(Contact, contact_id, options=[
        selectinload(Contact.emails), selectinload(Contact.phones), selectinload(Contact.company),
        selectinload(Contact.owner)])
    if person is None:
        abort(404)
    cursor = request.args.get("cursor") or None
    kind = request.args.get("kind") or None
    if kind not in {None, *(k.value for k in InteractionKind)}:
        abort(400, description="Unknown kind of timeline entry.")
    try:
        timeline = contact_timeline(db(), contact_id, limit=TIMELINE_PAGE, cursor=cursor,
                                    kind=InteractionKind(kind) if kind else None)
    except BadCursor:
        abort(400, description="This timeline link is not valid.")
    open_reminders = db().execute(select(Reminder).where(
        Reminder.contact_id == contact_id, Reminder.state.in_(ACTIVE_STATES)).order_by(Reminder.due_at).limit(50)
    ).scalars().all()
    open_tickets = db().execute(select(Ticket).where(
        Ticket.contact_id == contact_id, Ticket.merged_into_id.is_(None),
        Ticket.state.in_([TicketState.NEW, TicketState.OPEN, TicketState.PENDING])).order_by(Ticket.id.desc())
        .limit(50)).scalars().all()
    colleagues = db().execute(select(Contact).where(
        Contact.company_id == person.company_id, Contact.id != contact_id).order_by(Contact.search_name).limit(20)
    ).scalars().all() if person.company_id else []
    staff = db().execute(select(StaffUser).where(StaffUser.active).order_by(StaffUser.name)).scalars().all()
    return render_template("contact.html", contact=person, timeline=timeline, cursor=cursor, kind=kind,
                           staff=staff, roles=[r.value for r in Role], categories=[c.value for c in Category],
                           kinds=[k.value for k in InteractionKind], reminders=open_reminders, tickets=open_tickets,
                           colleagues=colleagues)


@pages.post("/contacts/<int:contact_id>/merge")
def contact_merge(contact_id: int) -> BaseResponse | str:
    """Merge a duplicate (by id or e-mail address) into this contact, after a confirmation."""
    by = editor_id()
    survivor = row_or_404(Contact, contact_id)
    wanted = request.form.get("duplicate", "").strip()
    if wanted.isdigit() and len(wanted) < 12:
        matches = [c for c in [db().get(Contact, int(wanted))] if c is not None]
    else:
        owners = select(ContactEmail.contact_id).where(ContactEmail.email == wanted.lower())
        matches = list(db().execute(select(Contact).where(Contact.id.in_(owners))).scalars())
    matches = [c for c in matches if c.id != contact_id]
    if len(matches) != 1:
        flash(_("No single other contact is “%(wanted)s”: give its number (from its address bar) or e-mail address.",
                wanted=wanted))
        return redirect(url_for("pages.contact", contact_id=contact_id))
    duplicate = matches[0]
    if request.form.get("confirm") != "1":
        return render_template("contact_merge.html", survivor=survivor, duplicate=duplicate)
    name = duplicate.display_name
    merge_contacts(db(), survivor, duplicate, by)
    flash(_("%(name)s was merged into %(survivor)s.", name=name, survivor=survivor.display_name))
    return redirect(url_for("pages.contact", contact_id=contact_id))


@pages.post("/contacts/<int:contact_id>/notes")
def contact_note(contact_id: int) -> BaseResponse:
    by = editor_id()
    try:
        add_note(db(), row_or_404(Contact, contact_id), by, request.form.get("text", ""))
    except ValidationError as exc:
        flash(_("No note added: %(why)s", why=exc.message))
    return redirect(url_for("pages.contact", contact_id=contact_id) + "#timeline")


@pages.get("/companies/<int:company_id>")
def company(company_id: int) -> str:
    firm = db().get(Company, company_id, options=[selectinload(Company.domains), selectinload(Company.phones)])
    if firm is None:
        abort(404)
    people = db().execute(
        select(Contact).where(Contact.company_id == company_id).options(selectinload(Contact.emails))
        .order_by(Contact.search_name.is_(None), Contact.search_name, Contact.id)).scalars().all()
    cursor = request.args.get("cursor") or None
    try:
        timeline = company_timeline(db(), company_id, limit=TIMELINE_PAGE, cursor=cursor)
    except BadCursor:
        abort(400, description="This timeline link is not valid.")
    return render_template("company.html", company=firm, people=people, timeline=timeline, cursor=cursor,
                           categories=[c.value for c in Category], customer_types=[t.value for t in CustomerType])


# --- interactions and attachments ---------------------------------------------------------------------

@pages.get("/interactions/<int:interaction_id>")
def interaction(interaction_id: int) -> str:
    item = db().get(Interaction, interaction_id, options=[
        selectinload(Interaction.contact_links).selectinload(InteractionContact.contact),
        selectinload(Interaction.staff_links).selectinload(InteractionStaff.staff),
        selectinload(Interaction.attachments).load_only(
            Attachment.id, Attachment.filename, Attachment.content_type, Attachment.size)])
    if item is None:
        abort(404)
    audit_mail_view(db(), state().settings, item, editor_or_reader_id())
    return render_template("interaction.html", item=item)


@pages.get("/interactions/<int:interaction_id>/html")
def interaction_html(interaction_id: int) -> Response:
    html = db().execute(select(Interaction.html).where(Interaction.id == interaction_id)).scalar_one_or_none()
    if html is None:
        abort(404)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = MAIL_HTML_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@pages.get("/attachments/<int:attachment_id>")
def attachment(attachment_id: int) -> Response:
    att = db().get(Attachment, attachment_id)
    if att is None:
        abort(404)
    return attachment_response(att)
