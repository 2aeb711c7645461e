"""What templates use besides the data: the CSRF field, who is logged in, times, labels and short forms."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import gettext as _

from crm_inbox.text import shorten
from web import csrf
from web.auth import current_user
from web.i18n import N_, local_time
from web.pages.blueprint import pages

KIND_LABELS = {"email": N_("mail"), "call": N_("call"), "note": N_("note"), "document": N_("document"),
               "meeting": N_("meeting"), "ticket": N_("ticket"), "reminder": N_("reminder"), "deal": N_("deal"),
               "other": N_("other")}
ROLE_LABELS = {"admin": N_("admin"), "staff": N_("staff"), "readonly": N_("read-only")}
CONTACT_ROLE_LABELS = {"lead": N_("lead"), "prospect": N_("prospect"), "customer": N_("customer"),
                       "debtor": N_("debtor"), "supplier": N_("supplier"), "other": N_("other")}
DIRECTION_LABELS = {"in": N_("incoming"), "out": N_("outgoing"), "internal": N_("internal")}


@pages.context_processor
def template_helpers() -> dict[str, Any]:
    return {"csrf_field": csrf.field, "current_user": current_user, "local_time": shown_time,
            "kind_label": lambda kind: _(KIND_LABELS.get(kind, kind)),
            "direction_label": lambda direction: _(DIRECTION_LABELS.get(direction, direction)),
            "role_label": lambda role: _(ROLE_LABELS.get(role, role)),
            "contact_role_label": lambda role: _(CONTACT_ROLE_LABELS.get(role, role))}


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
