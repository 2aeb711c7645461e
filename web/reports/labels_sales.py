"""The words of the sales and customers reports: every figure key, column key and the codes their rows show
(stages, sources, quote steps, pooled rows), in English; German in the translations. Lost reasons, customer
and campaign names are free text and are shown as they are."""

from __future__ import annotations

from flask_babel import LazyString
from flask_babel import lazy_gettext as _

LABELS: dict[str, LazyString] = {
    # sales figures
    "pipeline_by_stage": _("Pipeline by stage (open deals now)"),
    "forecast": _("Weighted forecast per month of expected close"),
    "win_rate_by_month": _("Win rate per month"),
    "win_rate_by_source": _("Win rate by source"),
    "sales_cycle": _("Sales cycle of won deals (days from creation to win)"),
    "quote_conversion": _("Quotes sent, accepted and ordered"),
    "lost_reasons": _("Lost reasons"),
    "sales_by_team": _("Deals by team"),
    "sales_by_owner": _("Deals by owner"),
    # sales columns
    "stage": _("Stage"), "deals": _("Deals"), "amount": _("Amount"), "weighted_amount": _("Weighted amount"),
    "month": _("Month"), "won": _("Won"), "lost": _("Lost"), "win_rate": _("Win rate"),
    "source": _("Source"), "median_days": _("Median (days)"), "p90_days": _("90th percentile (days)"),
    "step": _("Step"), "quotes": _("Quotes"), "net_value": _("Net value"), "share_of_sent": _("Share of sent"),
    "reason": _("Reason"), "share": _("Share"), "open_deals": _("Open deals"), "won_amount": _("Won amount"),
    "owner": _("Owner"),
    # sales row codes: stages (the default [sales] stages), sources, quote steps, pooled rows
    # (capitalised as chart and table labels; "call" and "web_form" are the service labels' channel words)
    "qualified": _("Qualified"), "needs_analysis": _("Needs analysis"), "quote_sent": _("Quote sent"),
    "negotiation": _("Negotiation"),
    "mail": _("E-mail"), "campaign": _("Campaign"), "manual": _("Manual"), "all_sources": _("All sources"),
    "quotes_sent": _("Sent"), "quotes_accepted": _("Accepted"), "quotes_ordered": _("Ordered"),
    "other_reasons": _("Other reasons"), "no_reason": _("No reason given"),
    # sales notes
    "forecast_overdue": _("Open deals whose expected close lies before the first month or was never set are "
                           "not in the forecast."),
    # customers figures
    "abc_classes": _("ABC analysis by revenue"),
    "abc_vs_assigned": _("ABC class by revenue against the assigned category"),
    "abc_mismatches": _("Customers whose assigned category differs from their revenue (largest 50)"),
    "new_leads_by_source": _("New leads per month by origin"),
    "no_contact_90_days": _("Customers without contact for more than 90 days (largest 100 by revenue)"),
    "no_contact_90_days_total": _("Customers without contact for more than 90 days in all"),
    "campaign_responses": _("Campaign responses"),
    # customers columns
    "abc_class": _("ABC class"), "customers": _("Customers"), "revenue": _("Revenue"),
    "customer_share": _("Share of customers"), "revenue_share": _("Share of revenue"),
    "assigned_a": _("Assigned A"), "assigned_b": _("Assigned B"), "assigned_c": _("Assigned C"),
    "assigned_none": _("No category assigned"), "customer": _("Customer"),
    "contact_person": _("Last contact with"),
    "cumulative_share": _("Cumulative share"), "assigned_category": _("Assigned category"),
    "new_leads": _("New leads"), "last_contact": _("Last contact"),
    "days_without_contact": _("Days without contact"), "revenue_12_months": _("Revenue, last 12 months"),
    "shown": _("Shown"), "campaign_name": _("Campaign"), "channel": _("Channel"), "sent": _("Sent"),
    "replied": _("Replied"),
    "reply_rate": _("Reply rate"), "bounced": _("Bounced"), "bounce_rate": _("Bounce rate"),
    "opted_out": _("Opted out"), "opt_out_rate": _("Opt-out rate"), "deal_rate": _("Deal rate"),
    # customers row codes
    "none": _("No category"), "email": _("E-mail"), "letter": _("Letter"),
    # origins of new contacts (dim_contact.origin) as column keys
    "origin_mail": _("E-mail"), "origin_call": _("Call"), "origin_import": _("Import"),
    "origin_manual": _("Entered by hand"), "origin_web_form": _("Web form"), "origin_api": _("API"),
    "origin_erp": _("ERP"), "origin_demo": _("Demo"), "origin_triage": _("Triage"),
    "origin_unknown": _("Unknown"),
}
