"""Importing the address book a company already has: reading CSV, XLSX and vCard files, suggesting a column
mapping, finding duplicates, the dry run (the real import, rolled back), and undoing a whole import."""
