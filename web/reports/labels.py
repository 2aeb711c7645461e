"""The words the report pages show: the shared keys (report names, filters, units, notes) here, the figures'
and columns' keys in the report helpers' modules (labels_service, labels_sales). ``label(key)`` looks in all
three and falls back to the key itself, so a key nobody labelled still shows (and a test can find it)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from flask_babel import LazyString
from flask_babel import lazy_gettext as _

LABELS: dict[str, LazyString] = {
    # the reports
    "service": _("Service"), "phone": _("Phone"), "sales": _("Sales"), "customers": _("Customers"),
    # the filters
    "from": _("From"), "to": _("To"), "team": _("Team"), "category": _("Category"),
    "all_teams": _("All teams"), "all_categories": _("All categories"), "no_category": _("No category"),
    # why figures are missing (works council: § 87 (1) no. 6 BetrVG)
    "small_groups": _("Teams with fewer than %(n)s people are pooled as “other teams” or left out, so that "
                       "no figure shows the work of individual people (works agreement)."),
    "team_too_small": _("This team has fewer than %(n)s people: its figures are not shown, so that they "
                         "cannot be read as the work of individual people (works agreement)."),
    "other_teams": _("Other teams"), "no_team": _("No team"),
    # what the overview says about each report
    "service_about": _("Tickets opened and closed, backlog, response and resolution times, reopen rate"),
    "phone_about": _("Calls per hour and weekday, answer rate, missed calls and call-backs"),
    "sales_about": _("Pipeline, weighted forecast, win rate, sales cycle, quote to order, lost reasons"),
    "customers_about": _("ABC analysis, new leads, customers without contact, campaign responses"),
    # units in column headers, chart texts
    "unit_hours": _("h"), "unit_minutes": _("min"), "unit_days": _("days"),
    "no_data": _("Nothing in this period"),
}

# The report helpers' modules: each defines LABELS for its figures and columns.
_HELPER_MODULES = ("web.reports.labels_service", "web.reports.labels_sales")


def _all_labels() -> list[Mapping[str, LazyString]]:
    found: list[Mapping[str, LazyString]] = []
    for name in _HELPER_MODULES:
        try:
            found.append(importlib.import_module(name).LABELS)
        except ModuleNotFoundError:  # a report helper's module not written yet: its keys show as they are
            continue
    found.append(LABELS)
    return found


def label(key: str, **values: object) -> str:
    """The key's text in the reader's language; the key itself when nobody labelled it."""
    for labels in _all_labels():
        if key in labels:
            text = str(labels[key])
            try:
                return text % values if values else text
            except (KeyError, ValueError, TypeError):  # a text with a "%" of its own: as it is
                return text
    return key


def is_labelled(key: str) -> bool:
    return any(key in labels for labels in _all_labels())
