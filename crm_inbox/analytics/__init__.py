"""Analytics, kept apart from the operative CRM: a DuckDB store of its own (a star schema copied read-only
from the operative database by ``crm-inbox analytics refresh``), its Parquet export, and the reports read
from it (service, phone, sales, customers). Nothing operative imports this package (import-linter contract);
it never writes the operative database. If it fails, mail, calls and pages go on."""
