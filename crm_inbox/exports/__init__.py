"""Exporting contacts and companies (all or a search result) as CSV, XLSX and vCard, each export audited."""
