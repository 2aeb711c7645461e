"""All tables. Importing this package registers every model on ``Base.metadata``."""

from crm_inbox.models.audit import AuditEntry
from crm_inbox.models.base import Base, utcnow
from crm_inbox.models.calls import Call, CallState
from crm_inbox.models.contacts import (
    Category,
    Company,
    CompanyDomain,
    CompanyPhone,
    Contact,
    ContactEmail,
    ContactPhone,
    CustomerType,
    Role,
    Salutation,
)
from crm_inbox.models.data_exchange import ImportBatch, ImportChange, ImportMapping, ImportState, PhoneBookToken
from crm_inbox.models.erp import Invoice, InvoiceStatus, Payment
from crm_inbox.models.imap import ImapFolder
from crm_inbox.models.inbound import InboundMessage, InboundState
from crm_inbox.models.interactions import (
    Attachment,
    Direction,
    Interaction,
    InteractionContact,
    InteractionKind,
    InteractionStaff,
)
from crm_inbox.models.login import LoginFailure
from crm_inbox.models.marketing import (
    Channel,
    ConsentRecord,
    ConsentState,
    ConsentSuppression,
    LegalBasis,
    Segment,
)
from crm_inbox.models.outbox import OutboxState, OutgoingMail
from crm_inbox.models.reminders import Reminder, ReminderState
from crm_inbox.models.sales import (
    Event,
    InteractionOpportunity,
    NumberCounter,
    Opportunity,
    OpportunitySource,
    Order,
    OrderLine,
    OrderState,
    Product,
    Quote,
    QuoteLine,
    QuoteState,
)
from crm_inbox.models.staff import ApiToken, StaffEmail, StaffRole, StaffSession, StaffUser
from crm_inbox.models.tickets import Priority, Ticket, TicketEvent, TicketState
from crm_inbox.models.webhooks import DeliveryState, WebhookDelivery, WebhookSubscription

__all__ = [
    "ApiToken",
    "Attachment",
    "AuditEntry",
    "Base",
    "Call",
    "CallState",
    "Category",
    "Channel",
    "Company",
    "CompanyDomain",
    "CompanyPhone",
    "ConsentRecord",
    "ConsentState",
    "ConsentSuppression",
    "Contact",
    "ContactEmail",
    "ContactPhone",
    "CustomerType",
    "DeliveryState",
    "Direction",
    "Event",
    "ImapFolder",
    "ImportBatch",
    "ImportChange",
    "ImportMapping",
    "ImportState",
    "InboundMessage",
    "InboundState",
    "Interaction",
    "InteractionContact",
    "InteractionKind",
    "InteractionOpportunity",
    "InteractionStaff",
    "Invoice",
    "InvoiceStatus",
    "LegalBasis",
    "LoginFailure",
    "NumberCounter",
    "Opportunity",
    "OpportunitySource",
    "Order",
    "OrderLine",
    "OrderState",
    "OutboxState",
    "OutgoingMail",
    "Payment",
    "PhoneBookToken",
    "Priority",
    "Product",
    "Quote",
    "QuoteLine",
    "QuoteState",
    "Reminder",
    "ReminderState",
    "Role",
    "Salutation",
    "Segment",
    "StaffEmail",
    "StaffRole",
    "StaffSession",
    "StaffUser",
    "Ticket",
    "TicketEvent",
    "TicketState",
    "WebhookDelivery",
    "WebhookSubscription",
    "utcnow",
]
