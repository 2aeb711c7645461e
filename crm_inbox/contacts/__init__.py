"""Contacts and companies: master data and its changes (service), leads from mail, the directory that finds
people by address, domain or number, search for pages and API, merging duplicates and the CSV export.

May import the shared modules (config, db, errors, ids, models, phone, text, audit) and mail's address rules;
no other capability.
"""
