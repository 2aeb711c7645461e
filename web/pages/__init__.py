"""Staff pages, server-rendered: one module per page or feature, all on the blueprint of web.pages.blueprint.

Mail content is only ever shown escaped (autoescape), and mail HTML only inside a sandboxed frame served with
its own restrictive Content-Security-Policy (web.pages.mail).
"""

from __future__ import annotations

from web.pages import (  # noqa: F401  (registers routes)
    account,
    admin,
    campaigns,
    companies,
    compose,
    consent,
    contacts,
    customer,
    documents,
    exports,
    filters,
    imports,
    login,
    mail,
    masterdata,
    merge,
    opportunities,
    orders,
    phone_books,
    pipeline,
    privacy,
    products,
    quotes,
    reminders,
    screenpop,
    segments,
    tickets,
    too_large,
    triage,
    webhooks_admin,
)
from web.pages.blueprint import pages

__all__ = ["pages"]
