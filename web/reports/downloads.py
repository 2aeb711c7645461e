"""A figure's rows as a CSV download: the same rows the page's table shows (what the works-council rule
withheld is missing here too), in machine form with the column keys as header.

Written like the other CSV exports (crm_inbox.contacts.csv_export): UTF-8 with a byte-order mark for Excel,
comma, CRLF, and text that a spreadsheet would take for a formula neutralised with a leading apostrophe.
Numbers are the reports' own (never someone's text) and stay numbers, also when negative."""

from __future__ import annotations

import csv
import io

from crm_inbox.analytics.model import Figure
from crm_inbox.contacts.csv_export import neutralise
from web.reports.formatting import csv_value


def figure_csv(figure: Figure) -> str:
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.key for c in figure.columns])
    for row in figure.rows:
        writer.writerow([neutralise(value) if isinstance(value, str) else csv_value(value) for value in row])
    return out.getvalue()
