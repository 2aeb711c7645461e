"""The words of the service and phone reports: their figures' and columns' keys and the codes their rows show
(channels, "all", "none"). Shared keys (team, category, other_teams, notes about small groups, units) live in
``web.reports.labels``."""

from __future__ import annotations

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

LABELS: dict[str, LazyString] = {
    # service figures
    "tickets_per_week": _l("Tickets opened and closed per week"),
    "backlog": _l("Open tickets at the end of each week"),
    "first_response_by_channel": _l("Time to first response by channel"),
    "first_response_by_category": _l("Time to first response by customer category"),
    "resolution_by_channel": _l("Resolution time by channel"),
    "resolution_by_category": _l("Resolution time by customer category"),
    "reopen_rate": _l("Reopen rate"),
    "tickets_by_team": _l("Tickets per team"),
    "tickets_by_staff": _l("Tickets per person"),
    # phone figures
    "calls_heatmap": _l("Inbound calls per hour and weekday"),
    "answer_rate": _l("Answer rate"),
    "missed_callbacks": _l("Missed calls and call-backs"),
    "calls_by_team": _l("Calls per team"),
    "calls_by_staff": _l("Calls per person"),
    # columns
    "week": _l("Week"), "opened": _l("Opened"), "closed": _l("Closed"), "open_tickets": _l("Open tickets"),
    "channel": _l("Channel"), "tickets": _l("Tickets"), "without_response": _l("Without response yet"),
    "median_hours": _l("Median"), "p90_hours": _l("90th percentile"), "reopened": _l("Reopened"),
    "median_first_response_hours": _l("Median time to first response"), "staff": _l("Staff member"),
    "hour": _l("Hour"),
    "mon": _l("Mon"), "tue": _l("Tue"), "wed": _l("Wed"), "thu": _l("Thu"), "fri": _l("Fri"), "sat": _l("Sat"),
    "sun": _l("Sun"),
    "inbound_calls": _l("Inbound calls"), "answered": _l("Answered"), "missed": _l("Missed"),
    "called_back": _l("Called back"), "not_called_back": _l("Not called back yet"),
    "called_back_share": _l("Share called back"), "median_callback_minutes": _l("Median time to call-back"),
    "p90_callback_minutes": _l("Time to call-back, 90th percentile"),
    "answered_calls": _l("Answered calls"), "outbound_calls": _l("Outbound calls"),
    # row values
    "all": _l("All"), "none": _l("No category"),
    "email": _l("E-mail"), "call": _l("Call"), "web_form": _l("Web form"), "other": _l("Other"),
    "note": _l("Note"), "document": _l("Document"), "meeting": _l("Meeting"), "letter": _l("Letter"),
    # notes
    "team_filter_not_applied": _l("This figure is about customers, not about staff work: the team filter does "
                                  "not apply to it."),
}
