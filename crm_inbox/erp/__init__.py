"""The ERP coupling: master data upserted by the ERP's customer number, invoices and payments from the ERP,
and what is overdue."""
