"""The reports: pure queries on the analytical store, each returning a :class:`~crm_inbox.analytics.model.Report`
(figures with their table rows); the web adapter draws, translates and downloads them."""
