"""The words of the sales and customers reports: every figure key, column key and the codes their rows show
(stages, sources, quote steps, pooled rows), in English; German in the translations. Lost reasons, customer
and campaign names are free text and are shown as they are."""

from __future__ import annotations

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

LABELS: dict[str, LazyString] = {
    # sales figures
    "pipeline_by_stage": _l("Pipeline by stage (open deals now)"),
    "forecast": _l("Weighted forecast per month of expected close"),
    "win_rate_by_month": _l("Win rate per month"),
    "win_rate_by_source": _l("Win rate by source"),
    "sales_cycle": _l("Sales cycle of won deals (days from creation to win)"),
    "quote_conversion": _l("Quotes sent, accepted and ordered"),
    "lost_reasons": _l("Lost reasons"),
    "sales_by_team": _l("Deals by team"),
    "sales_by_owner": _l("Deals by owner"),
    # sales columns
    "stage": _l("Stage"), "deals": _l("Deals"), "amount": _l("Amount"), "weighted_amount": _l("Weighted amount"),
    "month": _l("Month"), "won": _l("Won"), "lost": _l("Lost"), "win_rate": _l("Win rate"),
    "source": _l("Source"), "median_days": _l("Median (days)"), "p90_days": _l("90th percentile (days)"),
    "step": _l("Step"), "quotes": _l("Quotes"), "net_value": _l("Net value"), "share_of_sent": _l("Share of sent"),
    "reason": _l("Reason"), "share": _l("Share"), "open_deals": _l("Open deals"), "won_amount": _l("Won amount"),
    "owner": _l("Owner"),
    # sales row codes: stages (the default [sales] stages), sources, quote steps, pooled rows
    "qualified": _l("qualified"), "needs_analysis": _l("needs analysis"), "quote_sent": _l("quote sent"),
    "negotiation": _l("negotiation"),
    "mail": _l("mail"), "call": _l("call"), "web_form": _l("web form"), "campaign": _l("campaign"),
    "manual": _l("manual"), "all_sources": _l("All sources"),
    "quotes_sent": _l("Sent"), "quotes_accepted": _l("Accepted"), "quotes_ordered": _l("Ordered"),
    "other_reasons": _l("Other reasons"), "no_reason": _l("No reason given"),
    # sales notes
    "forecast_overdue": _l("Open deals whose expected close lies before the first month or was never set are "
                           "not in the forecast."),
    # customers figures
    "abc_classes": _l("ABC analysis by revenue"),
    "abc_vs_assigned": _l("ABC class by revenue against the assigned category"),
    "abc_mismatches": _l("Customers whose assigned category differs from their revenue (largest 50)"),
    "new_leads_by_source": _l("New leads per month by origin"),
    "no_contact_90_days": _l("Customers without contact for more than 90 days (largest 100 by revenue)"),
    "no_contact_90_days_total": _l("Customers without contact for more than 90 days in all"),
    "campaign_responses": _l("Campaign responses"),
    # customers columns
    "abc_class": _l("ABC class"), "customers": _l("Customers"), "revenue": _l("Revenue"),
    "customer_share": _l("Share of customers"), "revenue_share": _l("Share of revenue"),
    "assigned_a": _l("Assigned A"), "assigned_b": _l("Assigned B"), "assigned_c": _l("Assigned C"),
    "assigned_none": _l("No category assigned"), "customer": _l("Customer"),
    "contact_person": _l("Last contact with"),
    "cumulative_share": _l("Cumulative share"), "assigned_category": _l("Assigned category"),
    "new_leads": _l("New leads"), "last_contact": _l("Last contact"),
    "days_without_contact": _l("Days without contact"), "revenue_12_months": _l("Revenue, last 12 months"),
    "shown": _l("Shown"), "campaign_name": _l("Campaign"), "channel": _l("Channel"), "sent": _l("Sent"),
    "replied": _l("Replied"),
    "reply_rate": _l("Reply rate"), "bounced": _l("Bounced"), "bounce_rate": _l("Bounce rate"),
    "opted_out": _l("Opted out"), "opt_out_rate": _l("Opt-out rate"), "deal_rate": _l("Deal rate"),
    # customers row codes
    "none": _l("No category"), "email": _l("E-mail"), "letter": _l("Letter"),
    # origins of new contacts (dim_contact.origin) as column keys
    "origin_mail": _l("E-mail"), "origin_call": _l("Call"), "origin_import": _l("Import"),
    "origin_manual": _l("Entered by hand"), "origin_web_form": _l("Web form"), "origin_api": _l("API"),
    "origin_erp": _l("ERP"), "origin_demo": _l("Demo"), "origin_triage": _l("Triage"),
    "origin_unknown": _l("Unknown"),
}
