"""What staff may set on products, opportunities and quotes, as the sales services take them.

The design of ``contacts.inputs``: each field of a change is given (a value; None clears it) or ``NOT_GIVEN``
(left as it is). The edges (the API's JSON, the pages' forms) only translate their shapes into these; what a
value may be (a price's places, a stage, a VAT rate of ``[sales] rates``) is checked once, in the services.
Money is ``Decimal`` throughout, never float.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from crm_inbox.inputs import NOT_GIVEN, NotGiven

__all__ = [
    "NOT_GIVEN",
    "LineFields",
    "NotGiven",
    "OpportunityChanges",
    "OpportunityFields",
    "ProductChanges",
    "ProductFields",
    "QuoteChanges",
    "QuoteFields",
]


@dataclass(frozen=True)
class ProductFields:
    """A new product of the price list; ``vat_rate`` None: the default rate of ``[sales]``."""

    number: str
    name: str
    net_price: Decimal
    vat_rate: Decimal | None = None
    unit: str = "Stück"
    description: str | None = None
    active: bool = True


@dataclass(frozen=True)
class ProductChanges:
    number: str | NotGiven = NOT_GIVEN
    name: str | NotGiven = NOT_GIVEN
    net_price: Decimal | NotGiven = NOT_GIVEN
    vat_rate: Decimal | NotGiven | None = NOT_GIVEN  # None: the default rate
    unit: str | NotGiven = NOT_GIVEN
    description: str | NotGiven | None = NOT_GIVEN
    active: bool | NotGiven = NOT_GIVEN


@dataclass(frozen=True)
class OpportunityFields:
    """A new opportunity: a title and a contact or company (or both)."""

    title: str
    contact_id: int | None = None
    company_id: int | None = None
    owner_id: int | None = None  # None: the creator
    amount: Decimal | None = None
    close_date: date | None = None
    stage: str | None = None  # None: the first open stage
    probability: int | None = None  # None: the stage's default
    source: str = "manual"  # an OpportunitySource value


@dataclass(frozen=True)
class OpportunityChanges:
    """A change. A typed ``amount`` stops the amount following the quote; stage ``lost`` needs a
    ``lost_reason``; a stage change without ``probability`` sets the stage's default."""

    title: str | NotGiven = NOT_GIVEN
    contact_id: int | NotGiven | None = NOT_GIVEN
    company_id: int | NotGiven | None = NOT_GIVEN
    owner_id: int | NotGiven | None = NOT_GIVEN
    amount: Decimal | NotGiven | None = NOT_GIVEN
    close_date: date | NotGiven | None = NOT_GIVEN
    stage: str | NotGiven = NOT_GIVEN
    probability: int | NotGiven | None = NOT_GIVEN  # None: the stage's default
    lost_reason: str | NotGiven | None = NOT_GIVEN
    source: str | NotGiven = NOT_GIVEN


@dataclass(frozen=True)
class LineFields:
    """One line of a quote. A product fills text, description, unit, unit_price and vat_rate not given."""

    text: str | None = None
    product_id: int | None = None
    quantity: Decimal = Decimal(1)
    unit: str | None = None
    unit_price: Decimal | None = None
    discount_percent: Decimal = Decimal(0)
    vat_rate: Decimal | None = None
    description: str | None = None


@dataclass(frozen=True)
class QuoteFields:
    opportunity_id: int
    lines: tuple[LineFields, ...] = ()
    intro: str | None = None
    terms: str | None = None
    language: str | None = None  # None: the contact's language, else the default
    valid_until: date | None = None  # None: set from [sales] when it is finalised


@dataclass(frozen=True)
class QuoteChanges:
    lines: tuple[LineFields, ...] | NotGiven = NOT_GIVEN
    intro: str | NotGiven | None = NOT_GIVEN
    terms: str | NotGiven | None = NOT_GIVEN
    language: str | NotGiven | None = NOT_GIVEN
    valid_until: date | NotGiven | None = NOT_GIVEN
