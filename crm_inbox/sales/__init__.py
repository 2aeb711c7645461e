"""The sales path: products (the price list), opportunities (Verkaufschancen) through their stages, quotes
(Angebote) with lines, versions and PDFs, orders (Aufträge) with their confirmation and the handoff to the ERP,
and the mail that carries them (a reply to a quote finds its deal; a sent quote's follow-up completes itself).

Owns ``models/sales.py``. May import contacts, reminders, correspondence, timeline and outbox; is imported by
the pipeline (replies find their deal), the composition root and the web adapter. Money is ``Decimal`` from
end to end; one function (``totals.compute``) sums every document.
"""
