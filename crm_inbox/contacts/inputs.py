"""What staff may change on a contact or a company, as the service takes it.

Each field is either given (a value; None clears it) or ``NOT_GIVEN`` (left as it is): a PATCH names only
what it changes, and a form of an older page may lack a field. A sentinel per field (rather than a set of
given names beside Optional fields) keeps the value and whether it was given in one place, so they cannot
disagree. The edges (the API's JSON, the pages' forms) only translate their shapes into these; what a value
may be (an e-mail address, a phone number, a known role, a company name's length) is checked once, in
``contacts.service``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crm_inbox.inputs import NOT_GIVEN, NotGiven

__all__ = ["NOT_GIVEN", "CompanyChanges", "ContactChanges", "FieldValue", "NotGiven"]

# A free field's value as JSON has it (the pages give strings).
FieldValue = str | int | float | bool | None


@dataclass(frozen=True)
class ContactChanges:
    name: str | NotGiven | None = NOT_GIVEN
    company_id: int | NotGiven | None = NOT_GIVEN
    emails: tuple[str, ...] | NotGiven = NOT_GIVEN
    phones: tuple[str, ...] | NotGiven = NOT_GIVEN
    role: str | NotGiven | None = NOT_GIVEN  # a Role's value; the service refuses others, naming the choices
    category: str | NotGiven | None = NOT_GIVEN
    tags: tuple[str, ...] | NotGiven = NOT_GIVEN
    fields: Mapping[str, FieldValue] | NotGiven = NOT_GIVEN
    owner_id: int | NotGiven | None = NOT_GIVEN
    salutation: str | NotGiven | None = NOT_GIVEN  # a Salutation's value: "frau", "herr", "none"
    title: str | NotGiven | None = NOT_GIVEN  # "Dr.", "Prof. Dr."
    language: str | NotGiven | None = NOT_GIVEN  # "de" or "en"; None: the company's default
    customer_number: str | NotGiven | None = NOT_GIVEN
    # The person's own postal address (private customers); country an ISO 3166 code ("DE", "at" is taken).
    street: str | NotGiven | None = NOT_GIVEN
    postcode: str | NotGiven | None = NOT_GIVEN
    city: str | NotGiven | None = NOT_GIVEN
    country: str | NotGiven | None = NOT_GIVEN


@dataclass(frozen=True)
class CompanyChanges:
    name: str | NotGiven | None = NOT_GIVEN
    domains: tuple[str, ...] | NotGiven = NOT_GIVEN
    phones: tuple[str, ...] | NotGiven = NOT_GIVEN
    industry: str | NotGiven | None = NOT_GIVEN
    size: str | NotGiven | None = NOT_GIVEN
    customer_type: str | NotGiven | None = NOT_GIVEN
    category: str | NotGiven | None = NOT_GIVEN
    tags: tuple[str, ...] | NotGiven = NOT_GIVEN
    fields: Mapping[str, FieldValue] | NotGiven = NOT_GIVEN
    customer_number: str | NotGiven | None = NOT_GIVEN
    # The billing address (quotes and orders are addressed with it) and where goods go, when elsewhere.
    street: str | NotGiven | None = NOT_GIVEN
    postcode: str | NotGiven | None = NOT_GIVEN
    city: str | NotGiven | None = NOT_GIVEN
    country: str | NotGiven | None = NOT_GIVEN
    delivery_street: str | NotGiven | None = NOT_GIVEN
    delivery_postcode: str | NotGiven | None = NOT_GIVEN
    delivery_city: str | NotGiven | None = NOT_GIVEN
    delivery_country: str | NotGiven | None = NOT_GIVEN
