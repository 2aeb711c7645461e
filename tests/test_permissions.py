"""Roles against every API operation and every staff page: who may read, who may change, what only admins do.

The API operations come from the served OpenAPI document and the pages from the app's URL map, so a new
endpoint makes this test fail until it is given a line in the tables below (and then it is checked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select, update

from crm_inbox.calls.service import CallEvent, apply_event
from crm_inbox.db import unit_of_work
from crm_inbox.intake.store import Envelope, accept
from crm_inbox.models import ApiToken, Direction, InboundMessage, InboundState, Reminder, StaffUser, Ticket, utcnow
from crm_inbox.pipeline.runner import process
from crm_inbox.staff.service import add_staff, create_token
from tests.conftest import SUPPORT, make_settings

# --- who may do what ---------------------------------------------------------------------------------

READ = "read"  # every role: admin, staff, readonly
WRITE = "write"  # admin and staff; readonly gets 403
ADMIN = "admin"  # admin only; staff and readonly get 403
OWN = "own"  # every role, on their own account (their calendar URL, their API tokens)
WEBHOOK = "webhook"  # no staff role: the phone system's secret in the URL (wrong secret: 401/403)
PUBLIC = "public"  # no login at all

API_PERMISSIONS: dict[str, str] = {
    # contacts and companies
    "listContacts": READ, "getContact": READ, "contactTimeline": READ,
    "createContact": WRITE, "patchContact": WRITE, "addContactNote": WRITE, "mergeContact": WRITE,
    "listCompanies": READ, "getCompany": READ, "createCompany": WRITE, "patchCompany": WRITE,
    # data protection
    "exportContact": ADMIN, "eraseContact": ADMIN,
    # mail, triage, inbound
    "listInteractions": READ, "getInteraction": READ, "getAttachment": READ, "assignInteraction": WRITE,
    "listInbound": READ, "retryInbound": WRITE,
    # tickets
    "listTickets": READ, "getTicket": READ, "patchTicket": WRITE, "addTicketNote": WRITE, "mergeTicket": WRITE,
    # reminders and the caller's own calendar
    "listReminders": READ, "getReminder": READ, "createReminder": WRITE, "patchReminder": WRITE,
    "newCalendarUrl": OWN,
    # phone: staff tokens (or the CTI token) …
    "listCalls": READ, "lookup": READ, "callEvent": WRITE, "threecxTemplate": ADMIN,
    # … and the phone systems' own webhooks
    # the sales path: staff change, everyone reads (stages, number formats, letterhead are configuration)
    "listProducts": READ, "getProduct": READ, "createProduct": WRITE, "patchProduct": WRITE,
    "listOpportunities": READ, "getOpportunity": READ, "opportunityTimeline": READ, "pipeline": READ,
    "stages": READ, "createOpportunity": WRITE, "patchOpportunity": WRITE,
    "listQuotes": READ, "getQuote": READ, "quotePdf": READ, "quoteVersions": READ, "quoteTotals": READ,
    "createQuote": WRITE, "patchQuote": WRITE, "deleteQuote": WRITE, "finaliseQuote": WRITE, "sendQuote": WRITE,
    "acceptQuote": WRITE, "declineQuote": WRITE,
    "listOrders": READ, "getOrder": READ, "getOrderCsv": READ, "orderPdf": READ, "patchOrder": WRITE,
    "listDealSuggestions": READ, "linkInteractionToDeal": WRITE,
    # data in and out: exports
    "exportContacts": READ, "exportCompanies": READ,
    # data in and out: documents
    "addContactDocument": WRITE, "addCompanyDocument": WRITE, "patchDocument": WRITE, "deleteDocument": WRITE,
    # data in and out: webhook subscriptions
    "listWebhookSubscriptions": ADMIN, "getWebhookSubscription": ADMIN, "listWebhookDeliveries": ADMIN,
    "createWebhookSubscription": ADMIN, "patchWebhookSubscription": ADMIN, "deleteWebhookSubscription": ADMIN,
    "rotateWebhookSecret": ADMIN, "retryWebhookDelivery": ADMIN, "testWebhookSubscription": ADMIN,
    "retryFailedWebhookDeliveries": ADMIN,
    # data in and out: imports
    "listImports": READ, "getImport": READ, "listImportChanges": READ, "undoImport": WRITE,
    # data in and out: ERP
    "erpPutCompany": WRITE, "erpPutContact": WRITE, "erpSync": WRITE, "erpPutInvoice": WRITE,
    "erpPostPayment": WRITE, "erpGetCompany": READ, "erpGetContact": READ, "erpGetInvoice": READ,
    # segments and consent (#19)
    "listSegments": READ, "getSegment": READ, "countSegment": READ, "segmentContacts": READ,
    "exportSegment": READ, "createSegment": WRITE, "patchSegment": WRITE, "deleteSegment": WRITE,
    "contactConsent": READ, "recordConsent": WRITE, "consentProof": READ, "requestDoubleOptIn": WRITE,
    # campaigns (#19): staff create and send; only an admin approves a campaign above the threshold
    "listCampaigns": READ, "getCampaign": READ, "previewCampaign": READ, "campaignSummary": READ,
    "campaignResponders": READ, "campaignMerge": WRITE,
    "createCampaign": WRITE, "patchCampaign": WRITE, "deleteCampaign": WRITE, "testCampaign": WRITE,
    "startCampaign": WRITE, "pauseCampaign": WRITE, "resumeCampaign": WRITE, "cancelCampaign": WRITE,
    "qualifyResponder": WRITE, "campaignLetters": WRITE, "approveCampaign": ADMIN,
    # reports (#20): read from the analytics store, every role
    "getReport": READ,
    "ctiEvent": WEBHOOK, "sipgateIn": WEBHOOK, "sipgateOut": WEBHOOK, "placetelEvent": WEBHOOK,
    "twilioStatus": WEBHOOK, "threecxJournal": WEBHOOK, "threecxLookup": WEBHOOK,
}

PAGE_PERMISSIONS: dict[str, str] = {
    "pages.login": PUBLIC, "pages.healthz": PUBLIC,
    "pages.index": READ, "pages.dashboard": READ, "pages.contacts": READ, "pages.search_mail": READ,
    "pages.contact": READ, "pages.company": READ, "pages.companies": READ, "pages.interaction": READ,
    "pages.interaction_html": READ,
    "pages.attachment": READ, "pages.tickets": READ, "pages.ticket": READ, "pages.triage": READ,
    "pages.call_events": READ, "pages.contact_suggest": READ, "pages.contacts_csv": READ,
    "pages.contact_edit": WRITE, "pages.contact_note": WRITE, "pages.contact_merge": WRITE,
    "pages.contact_open_ticket": WRITE, "pages.ticket_change": WRITE, "pages.ticket_note": WRITE,
    "pages.ticket_merge": WRITE, "pages.reminder_new": WRITE, "pages.reminder_done": WRITE,
    "pages.reminder_snooze": WRITE, "pages.triage_assign": WRITE, "pages.triage_new_contact": WRITE,
    "pages.triage_retry": WRITE, "pages.triage_link_deal": WRITE,
    "pages.triage_unsubscribe": WRITE,
    "pages.contact_mail": WRITE, "pages.company_mail": WRITE, "pages.ticket_mail": WRITE,
    "pages.triage_ignore": WRITE, "pages.company_edit": WRITE,
    "pages.admin_users": ADMIN, "pages.admin_user_add": ADMIN, "pages.admin_user": ADMIN,
    "pages.admin_user_change": ADMIN, "pages.admin_settings": ADMIN,
    "pages.pipeline": READ, "pages.opportunity": READ, "pages.opportunity_new": READ, "pages.orders": READ,
    "pages.order": READ, "pages.order_document": READ, "pages.order_json": READ, "pages.order_csv": READ,
    "pages.products": READ, "pages.product_search": READ, "pages.quote": READ, "pages.quote_pdf": READ,
    "pages.quote_totals": READ,
    "pages.opportunity_create": WRITE, "pages.opportunity_edit": WRITE, "pages.opportunity_new_quote": WRITE,
    "pages.product_add": WRITE, "pages.product_edit": WRITE, "pages.quote_save": WRITE,
    "pages.quote_new_version": WRITE, "pages.quote_finalise": WRITE, "pages.quote_send": WRITE,
    "pages.quote_accept": WRITE, "pages.quote_decline": WRITE,
    "pages.contact_export": ADMIN, "pages.contact_erase": ADMIN,
    # data in and out: imports
    "pages.imports": WRITE, "pages.import_upload": WRITE, "pages.import_mapping": WRITE,
    "pages.import_mapping_save": WRITE, "pages.import_discard": WRITE, "pages.import_preview": WRITE,
    "pages.import_confirm": WRITE, "pages.import_batch": WRITE, "pages.import_undo_confirm": WRITE,
    "pages.import_undo": WRITE,
    # data in and out: exports
    "pages.contacts_export": READ, "pages.companies_export": READ,
    # data in and out: documents
    "pages.contact_document_add": WRITE, "pages.company_document_add": WRITE, "pages.document_rename": WRITE,
    "pages.document_remove": WRITE,
    # data in and out: webhooks
    "pages.webhooks": ADMIN, "pages.webhook_create": ADMIN, "pages.webhook": ADMIN, "pages.webhook_change": ADMIN,
    "pages.webhook_rotate": ADMIN, "pages.webhook_delete": ADMIN, "pages.webhook_test": ADMIN,
    "pages.webhook_retry": ADMIN, "pages.webhook_retry_failed": ADMIN,
    # data in and out: phone books
    "pages.phone_books": ADMIN, "pages.phone_book_create": ADMIN, "pages.phone_book_revoke": ADMIN,
    # segments and consent (#19); the public /unsubscribe and /consent/confirm pages are another blueprint
    "pages.segments_list": READ, "pages.segment": READ, "pages.segment_export": READ, "pages.segment_count": READ,
    "pages.segment_new": WRITE, "pages.segment_create": WRITE, "pages.segment_edit": WRITE,
    "pages.segment_save": WRITE, "pages.segment_rename": WRITE, "pages.segment_delete": WRITE,
    "pages.consent_record": WRITE, "pages.consent_double_opt_in": WRITE, "pages.consent_proof": READ,
    # campaigns (#19)
    "pages.campaigns_list": READ, "pages.campaign": READ, "pages.campaign_preview": READ,
    "pages.campaign_recipients": READ, "pages.campaign_merge": WRITE,
    "pages.campaign_new": WRITE, "pages.campaign_create": WRITE, "pages.campaign_edit": WRITE,
    "pages.campaign_save": WRITE, "pages.campaign_delete": WRITE, "pages.campaign_test": WRITE,
    "pages.campaign_start": WRITE, "pages.campaign_pause": WRITE, "pages.campaign_resume": WRITE,
    "pages.campaign_cancel": WRITE, "pages.campaign_qualify": WRITE, "pages.campaign_letters": WRITE,
    "pages.campaign_approve": ADMIN,
    # reports (#20): read from the analytics store, every role
    "reports.overview": READ, "reports.report": READ, "reports.chart": READ, "reports.table_csv": READ,
    "pages.account": OWN, "pages.account_new_token": OWN, "pages.account_revoke_token": OWN,
    "pages.calendar_url": OWN, "pages.logout": OWN,
}

ROLES = ("admin", "staff", "readonly")
ALLOWED = {READ: set(ROLES), OWN: set(ROLES), WRITE: {"admin", "staff"}, ADMIN: {"admin"}}
PASSWORD = "richtig-geheim-42"
CTI_TOKEN = "cti-secret-for-tests"


def may(role: str, permission: str) -> bool:
    return role in ALLOWED[permission]


# --- a small world with one object of each kind ---------------------------------------------------------

@dataclass
class World:
    tokens: dict[str, str]
    ids: dict[str, int]


@pytest.fixture
def world(factory, database_url, tmp_path) -> World:
    from crm_inbox.sales.inputs import LineFields, OpportunityFields, ProductFields, QuoteFields
    from crm_inbox.sales.opportunities import create_opportunity
    from crm_inbox.sales.products import create_product
    from crm_inbox.sales.quotes import accept_quote, create_quote, finalise_quote
  # type: ignore[no-untyped-def]
    settings = make_settings(database_url, tmp_path / "instance", cti={"token": CTI_TOKEN})
    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    with unit_of_work(factory) as session:
        for role in ROLES:
            user = add_staff(session, f"{role}@beispiel-firma.de", role.title(), role, password=PASSWORD)
            tokens[role] = create_token(session, user, "permissions test")
    msg = EmailMessage()
    msg["From"] = "Karla Kundin <karla@kundin.example>"
    msg["To"] = SUPPORT
    msg["Subject"] = "Frage zur Rechnung"
    msg["Message-ID"] = "<rechnung@kundin.example>"
    msg.set_content("Guten Tag,\nbitte prüfen.\n")
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="rechnung.pdf")
    with unit_of_work(factory) as session:
        accepted = accept(session, bytes(msg), Envelope(mail_from="karla@kundin.example", rcpt_to=(SUPPORT,)))
        failed = accept(session, b"", Envelope(rcpt_to=(SUPPORT,)))
    outcome = process(factory, settings, accepted.inbound_id)
    process(factory, settings, failed.inbound_id)
    with unit_of_work(factory) as session:
        from crm_inbox.models import Attachment, Company, Contact, Interaction

        interaction = session.get_one(Interaction, outcome.interaction_id)
        ids["interaction"] = interaction.id
        ids["contacts"] = interaction.contact_ids[0]
        ids["attachments"] = session.execute(select(Attachment.id)).scalar_one()
        ids["tickets"] = session.execute(select(Ticket.id)).scalar_one()
        ids["reminders"] = session.execute(select(Reminder.id)).scalars().first()  # type: ignore[assignment]
        ids["inbound"] = failed.inbound_id
        company = Company(name="Kundin GmbH", tags=[], fields={})
        session.add(company)
        session.add(Contact(name="Zweite Kundin", tags=[], fields={}))
        session.flush()
        ids["companies"] = company.id
        ids["webhook-subscriptions"] = ids["webhook-deliveries"] = 1  # none: a 404 when allowed (webhooks)
        ids["imports"] = 1  # none: a 404 when allowed (data in and out: imports)
        ids["segments"] = 1  # none: a 404 when allowed (segments)
        ids["campaigns"] = 1  # none: a 404 when allowed (campaigns)
        ids["erp"] = 10001  # the ERP's paths take a customer or invoice number (data in and out: ERP)
        # reports (#20): /api/v1/reports/service, /reports/service/tickets_per_week.csv
        ids["reports"] = ids["report"] = "service"  # type: ignore[assignment]
        ids["figure"] = "tickets_per_week"  # type: ignore[assignment]
        ids["documents"] = interaction.id  # a mail, not an upload: renaming or removing it is a 404 (data in and out)
        apply_event(session, settings, CallEvent("generic", "perm-1", "hangup", utcnow(), direction=Direction.IN,
                                                 from_number="+49 30 1234567", to_number="22", cause="noAnswer"))
        ids["token"] = session.execute(select(ApiToken.id).join(StaffUser)
                                       .where(StaffUser.role == "readonly")).scalar_one()
        ids["users"] = session.execute(select(StaffUser.id).where(StaffUser.role == "readonly")).scalar_one()
        state = session.get_one(InboundMessage, failed.inbound_id).state
    # The sales path: a product, an opportunity with a draft quote, and an accepted quote's order.
    with unit_of_work(factory) as session:
        admin = session.execute(select(StaffUser.id).where(StaffUser.role == "admin")).scalar_one()
        product = create_product(session, settings, ProductFields("P-1", "Wartung", Decimal("100")), by=admin)
        opp = create_opportunity(session, settings, OpportunityFields("Wartung", contact_id=ids["contacts"]), by=admin)
        lines = (LineFields(product_id=product.id),)
        draft = create_quote(session, settings, QuoteFields(opp.id, lines), by=admin)
        won = create_opportunity(session, settings, OpportunityFields("Anlage", contact_id=ids["contacts"]), by=admin)
        sold = create_quote(session, settings, QuoteFields(won.id, lines), by=admin)
        order = accept_quote(session, settings, finalise_quote(session, settings, sold, by=admin), by=admin)
        ids |= {"products": product.id, "opportunities": opp.id, "quotes": draft.id, "orders": order.id}
    assert state == InboundState.FAILED and ids["reminders"]
    return World(tokens, ids)


@pytest.fixture
def app(settings, factory, database_url, tmp_path):  # type: ignore[no-untyped-def]
    from crm_inbox.analytics.store import build_store
    from web import create_app

    app_settings = make_settings(database_url, tmp_path / "instance", cti={"token": CTI_TOKEN})
    # An empty analytics store, so the reports' pages answer (#20).
    (tmp_path / "instance").mkdir(exist_ok=True)
    build_store(app_settings.analytics.store_path(app_settings.service.instance_dir), {})
    app = create_app(app_settings, factory)
    app.config["TESTING"] = True
    return app


# --- the API -----------------------------------------------------------------------------------------

def operations(client: Any) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(operationId, method, path template, operation) for every operation the served document lists."""
    document = client.get("/api/v1/openapi.json").json
    out = []
    for path, item in document["paths"].items():
        for method in ("get", "post", "patch", "put", "delete"):
            if method in item:
                out.append((item[method]["operationId"], method, path, item[method]))
    return out


def concrete(path: str, world: World, token: str = CTI_TOKEN) -> str:
    """The path with a real object's id (by the collection it is in) and the phone token."""
    collection = path.strip("/").split("/")[0]
    ident = world.ids["interaction" if collection == "interactions" else collection] if "{id}" in path else None
    return "/api/v1" + path.replace("{id}", str(ident)).replace("{token}", token)


def call_api(client: Any, method: str, url: str, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if method in {"post", "patch", "put"}:
        kwargs["json"] = {}  # empty input: a permitted request answers 400 at worst, and changes nothing
    return getattr(client, method)(url, **kwargs)


def test_every_api_operation_has_an_expected_permission(client):
    listed = {op for op, *_ in operations(client)}
    assert listed - set(API_PERMISSIONS) == set(), "add these operations to API_PERMISSIONS"
    assert set(API_PERMISSIONS) - listed == set(), "these operations are no longer in the OpenAPI document"


def test_api_roles_against_every_operation(client, world):
    ops = operations(client)
    problems = []
    # Refusals first: they must change nothing, so the objects are still there for the permitted calls.
    for op, method, path, _ in ops:
        permission = API_PERMISSIONS[op]
        url = concrete(path, world)
        if permission == WEBHOOK:
            wrong = call_api(client, method, concrete(path, world, token="wrong-token"), {})
            if wrong.status_code not in (401, 403):
                problems.append(f"{op} with a wrong phone-system token: {wrong.status_code}")
            continue
        for label, headers in (("no token", {}), ("invalid token", {"Authorization": "Bearer crm_invalid"})):
            status = call_api(client, method, url, headers).status_code
            if status != 401:
                problems.append(f"{op} with {label}: {status}, expected 401")
        for role in ROLES:
            if not may(role, permission):
                status = call_api(client, method, url, {"Authorization": f"Bearer {world.tokens[role]}"}).status_code
                if status != 403:
                    problems.append(f"{op} as {role}: {status}, expected 403")
    # Then the permitted calls (erasing last: it removes the contact the others use).
    for op, method, path, _ in sorted(ops, key=lambda o: o[0] == "eraseContact"):
        permission = API_PERMISSIONS[op]
        if permission == WEBHOOK:
            continue
        for role in ROLES:
            if may(role, permission):
                status = call_api(client, method, concrete(path, world),
                                  {"Authorization": f"Bearer {world.tokens[role]}"}).status_code
                if status in (401, 403) or status >= 500:
                    problems.append(f"{op} as {role}: {status}, expected to be allowed")
    assert problems == []


def test_reading_works_for_every_role(client, world):
    """Not only "not refused": a read-only user really gets the data."""
    for role in ROLES:
        headers = {"Authorization": f"Bearer {world.tokens[role]}"}
        for url in (f"/api/v1/contacts/{world.ids['contacts']}", f"/api/v1/interactions/{world.ids['interaction']}",
                    f"/api/v1/tickets/{world.ids['tickets']}", "/api/v1/calls", "/api/v1/inbound?state=failed",
                    f"/api/v1/attachments/{world.ids['attachments']}"):
            assert client.get(url, headers=headers).status_code == 200, (role, url)


# --- the pages ---------------------------------------------------------------------------------------

def page_routes(app: Any) -> list[tuple[str, str, str]]:
    """(endpoint, method, rule) for every route of the staff pages."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(("pages.", "reports.")):
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                out.append((rule.endpoint, method, rule.rule))
    return out


_ARG_IDS = {"segment_id": "segments", "campaign_id": "campaigns", "recipient_id": "campaigns",
            "contact_id": "contacts", "company_id": "companies",
            "interaction_id": "interaction",
            "attachment_id": "attachments", "ticket_id": "tickets", "reminder_id": "reminders",
            "inbound_id": "inbound", "token_id": "token", "user_id": "users", "opportunity_id": "opportunities",
            "quote_id": "quotes", "order_id": "orders", "product_id": "products",
            "subscription_id": "webhook-subscriptions", "delivery_id": "webhook-subscriptions",  # webhooks
            "batch_id": "contacts",  # no import in the world: staff get a 404 for an import batch, still allowed
            "name": "report", "figure": "figure"}  # reports (#20): /reports/service/tickets_per_week.csv


def page_url(rule: str, world: World) -> str:
    return re.sub(r"<(?:int:)?(\w+)>", lambda m: str(world.ids[_ARG_IDS[m.group(1)]]), rule)


def csrf(client: Any, page: str = "/login") -> str:
    html = client.get(page).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def visit(client: Any, method: str, url: str, token: str) -> Any:
    if method == "POST":
        return client.post(url, data={"csrf_token": token})  # nothing else: the smallest request
    response = client.get(url)
    response.close()  # the screen-pop event stream never ends by itself
    return response


def test_every_page_has_an_expected_permission(app):
    endpoints = {endpoint for endpoint, *_ in page_routes(app)}
    assert endpoints - set(PAGE_PERMISSIONS) == set(), "add these pages to PAGE_PERMISSIONS"
    assert set(PAGE_PERMISSIONS) - endpoints == set(), "these pages no longer exist"


def test_page_roles_against_every_route(app, world, factory):
    routes = [r for r in page_routes(app) if PAGE_PERMISSIONS[r[0]] != PUBLIC]
    problems = []
    anonymous = app.test_client()
    token = csrf(anonymous)
    for endpoint, method, rule in routes:
        response = visit(anonymous, method, page_url(rule, world), token)
        if response.status_code != 302 or not response.headers["Location"].startswith("/login"):
            problems.append(f"{method} {endpoint} without login: {response.status_code}")
    for role in ("readonly", "staff", "admin"):  # the admin last: its permitted requests change things
        client = app.test_client()
        token = csrf(client)
        client.post("/login", data={"email": f"{role}@beispiel-firma.de", "password": PASSWORD, "csrf_token": token})
        token = csrf(client, "/me")  # renewed at login
        # Logging out ends the session: last. Erasing asks for a confirmation first, so it changes nothing here.
        for endpoint, method, rule in sorted(routes, key=lambda r: r[0] == "pages.logout"):
            response = visit(client, method, page_url(rule, world), token)
            permitted = may(role, PAGE_PERMISSIONS[endpoint])
            location = response.headers.get("Location", "")
            if not permitted and response.status_code != 403:
                problems.append(f"{method} {endpoint} as {role}: {response.status_code}, expected 403")
            if permitted and (response.status_code in (401, 403) or response.status_code >= 500
                              or (location.startswith("/login") and endpoint != "pages.logout")):
                problems.append(f"{method} {endpoint} as {role}: {response.status_code} {location}, expected allowed")
        with unit_of_work(factory) as session:  # revoking the token above must not stop the next role's run
            session.execute(update(ApiToken).values(revoked_at=None))
    assert problems == []
