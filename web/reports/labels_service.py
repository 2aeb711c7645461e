"""The words of the service and phone reports: their figures' and columns' keys and the codes their rows show
(channels, "all", "none"). Shared keys (team, category, other_teams, notes about small groups, units) live in
``web.reports.labels``."""

from __future__ import annotations

from flask_babel import LazyString
from flask_babel import lazy_gettext as _

LABELS: dict[str, LazyString] = {
    # service figures
    "tickets_per_week": _("Tickets opened and closed per week"),
    "backlog": _("Open tickets at the end of each week"),
    "first_response_by_channel": _("Time to first response by channel"),
    "first_response_by_category": _("Time to first response by customer category"),
    "resolution_by_channel": _("Resolution time by channel"),
    "resolution_by_category": _("Resolution time by customer category"),
    "reopen_rate": _("Reopen rate"),
    "tickets_by_team": _("Tickets per team"),
    "tickets_by_staff": _("Tickets per person"),
    # phone figures
    "calls_heatmap": _("Inbound calls per hour and weekday"),
    "answer_rate": _("Answer rate"),
    "missed_callbacks": _("Missed calls and call-backs"),
    "calls_by_team": _("Calls per team"),
    "calls_by_staff": _("Calls per person"),
    # columns
    "week": _("Week"), "opened": _("Opened"), "closed": _("Closed"), "open_tickets": _("Open tickets"),
    "channel": _("Channel"), "tickets": _("Tickets"), "without_response": _("Without response yet"),
    "median_hours": _("Median"), "p90_hours": _("90th percentile"), "reopened": _("Reopened"),
    "median_first_response_hours": _("Median time to first response"), "staff": _("Staff member"),
    "hour": _("Hour"),
    "mon": _("Mon"), "tue": _("Tue"), "wed": _("Wed"), "thu": _("Thu"), "fri": _("Fri"), "sat": _("Sat"),
    "sun": _("Sun"),
    "inbound_calls": _("Inbound calls"), "answered": _("Answered"), "missed": _("Missed"),
    "called_back": _("Called back"), "not_called_back": _("Not called back yet"),
    "called_back_share": _("Share called back"), "median_callback_minutes": _("Median time to call-back"),
    "p90_callback_minutes": _("Time to call-back, 90th percentile"),
    "answered_calls": _("Answered calls"), "outbound_calls": _("Outbound calls"),
    # row values
    "all": _("All"), "none": _("No category"),
    "email": _("E-mail"), "call": _("Call"), "web_form": _("Web form"), "other": _("Other"),
    "note": _("Note"), "document": _("Document"), "meeting": _("Meeting"), "letter": _("Letter"),
    # notes
    "team_filter_not_applied": _("This figure is about customers, not about staff work: the team filter does "
                                  "not apply to it."),
    # works council, whatever the filters (service, phone and sales figures about staff work)
    "few_people": _("Fewer than %(n)s people stand behind this figure in the chosen period and filters, so it "
                     "is not shown: it could be read as the work of individual people (works agreement). A "
                     "company with fewer than %(n)s staff never sees such figures."),
    "small_rows": _("Rows with fewer than %(n)s people behind them are shown without figures (—), and where "
                     "needed one more row, so that no row can be read as the work of individual people (works "
                     "agreement)."),
}
