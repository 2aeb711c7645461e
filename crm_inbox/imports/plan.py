"""Deciding, row by row, what an import does: new, updates a record, unchanged, duplicate or error. ``read``
checks a row's values without the database (the costly part, done before the import takes SQLite's write
lock); the ``Planner`` then matches them against the keys loaded up front and the rows before (never the wrong
customer: several candidates make a duplicate the page names). Nothing is written here; ``imports.write``
carries the plan out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crm_inbox.imports.index import KeyIndex, ids
from crm_inbox.imports.rows import RowData, RowError, business_domain, read_row


@dataclass(slots=True)
class RowOutcome:
    row: int  # the row's line as a spreadsheet user counts it (header = 1, first data row = 2)
    action: str  # "new" | "update" | "unchanged" | "duplicate" | "error"
    label: str  # who the row is ("Anna Schmidt, Müller GmbH")
    contact_id: int | None = None
    company_id: int | None = None
    changed: list[str] = field(default_factory=list)  # field keys an "update" changes
    # An update's changed fields' old and new values as display text, keyed like ``changed`` (see differences).
    values: dict[str, tuple[str, str]] = field(default_factory=dict)
    detail: str = ""  # in English for the CLI: duplicate "contacts 12 (same e-mail), 15 (same phone)"; the error
    # What the page translates: an error's or duplicate's ``reason`` code with its ``params`` (see rows.ERRORS;
    # duplicates: "same_row" of ``duplicate_of_row`` by ``key``; "same_record": that row matched the same record
    # ``duplicate_of`` by another key; "ambiguous": several records ``duplicate_of`` match).
    reason: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    duplicate_of_row: int | None = None
    duplicate_of: list[tuple[str, int, str]] = field(default_factory=list)  # (object type, id, key)
    key: str = ""  # "e-mail", "phone", "customer number", "company name"; "" for "same_record"


@dataclass(slots=True)
class CompanyPlan:
    """A company the import touches: an existing one (``existing``) or one it creates."""

    name: str
    existing: int | None = None
    values: dict[str, Any] = field(default_factory=dict)  # set when different (a company row says so)
    fill: dict[str, Any] = field(default_factory=dict)  # set only where empty (what its people's rows carry)
    fields: dict[str, str] = field(default_factory=dict)
    fill_fields: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    phones: list[tuple[str, str | None, str]] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    outcome: RowOutcome | None = None  # the company row's outcome, if a row describes the company
    id: int | None = None  # existing, or the new id once written

    def __post_init__(self) -> None:
        self.id = self.existing


@dataclass(slots=True)
class PersonPlan:
    data: RowData
    outcome: RowOutcome
    existing: int | None  # the contact the row matched
    company: CompanyPlan | None
    company_id: int | None = None  # a company found by the mail domain (new contacts only)


_WHAT = {"cn": "customer number", "email": "e-mail", "phone": "phone", "name": "name"}  # in ``detail``
KEYS = {"cn": "customer number", "email": "e-mail", "phone": "phone", "name": "company name"}  # ``key``


def _ambiguous(outcome: RowOutcome, kind: str, candidates: dict[int, str]) -> RowOutcome:
    """Several existing records match the row: it names them all and is left out."""
    ids = sorted(candidates)
    word = kind if len(ids) == 1 else {"contact": "contacts", "company": "companies"}[kind]
    _duplicate(outcome, f"{word} " + ", ".join(f"{i} (same {_WHAT[candidates[i]]})" for i in ids), "ambiguous")
    outcome.duplicate_of = [(kind, i, KEYS[candidates[i]]) for i in ids]
    return outcome


def _same_row(outcome: RowOutcome, row: int, kind: str) -> RowOutcome:
    """An earlier row of the file has the same key."""
    _duplicate(outcome, f"row {row} (same {_WHAT[kind]})", "same_row")
    outcome.duplicate_of_row, outcome.key = row, KEYS[kind]
    return outcome


def _same_record(outcome: RowOutcome, row: int, kind: str, ident: int) -> RowOutcome:
    """An earlier row matched the same existing record, by another key."""
    _duplicate(outcome, f"row {row} (same {kind})", "same_record")
    outcome.duplicate_of_row, outcome.duplicate_of = row, [(kind, ident, "")]
    return outcome


def read(number: int, headers: list[str], cells: list[str], mapping: dict[str, str],
         region: str) -> RowData | RowOutcome | None:
    """A row's checked values, the outcome of a row that cannot be imported, or None for an empty row."""
    try:
        return read_row(number, headers, cells, mapping, region)
    except RowError as exc:
        return RowOutcome(number, "error", _label(headers, cells, mapping), detail=str(exc), reason=exc.reason,
                          params=exc.params)


def _label(headers: list[str], cells: list[str], mapping: dict[str, str]) -> str:
    """Who a row that cannot be read is: its name, company or address cells as they are."""
    given = {mapping.get(h): c.strip() for h, c in zip(headers, cells, strict=False) if c and c.strip()}
    name = given.get("name") or " ".join(p for p in (given.get("first_name"), given.get("last_name")) if p)
    parts = [p for p in (name, given.get("company")) if p] or [given.get("email") or given.get("phone") or ""]
    return ", ".join(parts)[:200]


class Planner:
    def __init__(self, index: KeyIndex, free_mail: frozenset[str], own_domains: frozenset[str]) -> None:
        self.index = index
        self.free_mail, self.own_domains = free_mail, own_domains
        self.outcomes: list[RowOutcome] = []
        self.people: list[PersonPlan] = []
        self.existing_companies: dict[int, CompanyPlan] = {}
        self.new_companies: dict[str, CompanyPlan] = {}  # by company key
        self.file_keys: dict[str, dict[str, int]] = {"cn": {}, "email": {}, "phone": {}}
        self.company_rows: dict[str, dict[str, int]] = {"name": {}, "cn": {}}
        self.claimed_domains: set[str] = set()
        self.matched: dict[tuple[str, int], int] = {}  # (kind, existing id) → the row that matched it first

    def add(self, item: RowData | RowOutcome) -> None:
        """Plan a row ``read`` gave: its values, or its error outcome (kept in file order)."""
        if isinstance(item, RowOutcome):
            self.outcomes.append(item)
            return
        self.outcomes.append(self._person(item) if item.person else self._company_row(item))

    # --- people ---

    def _person(self, data: RowData) -> RowOutcome:
        outcome = RowOutcome(data.row, "new", data.label)
        keys = ([("cn", data.contact["customer_number"])] if data.contact.get("customer_number") else []) \
            + [("email", e) for e, _ in data.emails] + [("phone", p) for _, p, _ in data.phones if p]
        for kind, key in keys:
            if key in self.file_keys[kind]:
                return _same_row(outcome, self.file_keys[kind][key], kind)
        table = {"cn": self.index.contact_cn, "email": self.index.contact_email, "phone": self.index.contact_phone}
        candidates: dict[int, str] = {}
        for kind, key in keys:
            for ident in ids(table[kind], key):
                candidates.setdefault(ident, kind)
        if len(candidates) > 1:
            return _ambiguous(outcome, "contact", candidates)
        company: CompanyPlan | None = None
        if data.company_key:
            found = self._company_named(data)
            if isinstance(found, dict):
                return _ambiguous(outcome, "company", found)
            company = found
        existing = next(iter(candidates), None)
        if existing is not None and ("contact", existing) in self.matched:  # found by another key before
            return _same_record(outcome, self.matched[("contact", existing)], "contact", existing)
        plan = PersonPlan(data, outcome, existing, company)
        domain = business_domain(data, self.free_mail, self.own_domains)
        if company is not None:
            company.fill.update({k: v for k, v in data.company_values.items() if k not in company.fill})
            company.fill_fields.update({k: v for k, v in data.company_fields.items() if k not in company.fill_fields})
            self._claim(company, domain)
        elif existing is None and domain:
            plan.company_id = self.index.domain_owner.get(domain)  # people at a company's domain join it
        for kind, key in keys:
            self.file_keys[kind][key] = data.row
        if existing is not None:
            self.matched[("contact", existing)] = data.row
        outcome.contact_id, outcome.company_id = existing, company.existing if company else plan.company_id
        self.people.append(plan)
        return outcome

    def _company_named(self, data: RowData) -> CompanyPlan | dict[int, str]:
        """The company a person row names: an existing one by key, or one this import creates; the candidates
        when several companies have that name."""
        found = ids(self.index.company_key, data.company_key)
        if len(found) > 1:
            return dict.fromkeys(found, "name")
        if found:
            return self._existing(found[0], data.company or "")
        plan = self.new_companies.get(data.company_key)
        if plan is None:
            plan = self.new_companies[data.company_key] = CompanyPlan(name=data.company or "")
        return plan

    def _existing(self, ident: int, name: str) -> CompanyPlan:
        if ident not in self.existing_companies:
            self.existing_companies[ident] = CompanyPlan(name=name, existing=ident)
        return self.existing_companies[ident]

    def _claim(self, company: CompanyPlan, domain: str | None) -> None:
        """A business mail domain becomes the company's unless some company has it already."""
        if domain and domain not in self.index.domain_owner and domain not in self.claimed_domains:
            self.claimed_domains.add(domain)
            company.domains.append(domain)

    # --- company-only rows ---

    def _company_row(self, data: RowData) -> RowOutcome:
        outcome = RowOutcome(data.row, "new", data.label)
        number = data.company_values.get("customer_number")
        keys = [("name", data.company_key)] + ([("cn", number)] if number else [])
        for kind, key in keys:
            if key in self.company_rows[kind]:
                return _same_row(outcome, self.company_rows[kind][key], kind)
        candidates: dict[int, str] = {}
        for kind, key in keys:
            for ident in ids(self.index.company_key if kind == "name" else self.index.company_cn, key):
                candidates.setdefault(ident, kind)
        if len(candidates) > 1:
            return _ambiguous(outcome, "company", candidates)
        if candidates:
            ident = next(iter(candidates))
            if ("company", ident) in self.matched:
                return _same_record(outcome, self.matched[("company", ident)], "company", ident)
            self.matched[("company", ident)] = data.row
            plan = self._existing(ident, data.company or "")
        else:
            plan = self.new_companies.setdefault(data.company_key, CompanyPlan(name=data.company or ""))
        plan.values.update(data.company_values)
        plan.fields.update(data.company_fields)
        plan.tags.extend(t for t in data.tags if t not in plan.tags)
        known = {p[1] or p[0] for p in plan.phones}
        plan.phones.extend(p for p in data.phones if (p[1] or p[0]) not in known)
        self._claim(plan, business_domain(data, self.free_mail, self.own_domains))
        plan.outcome = outcome
        outcome.company_id = plan.existing
        for kind, key in keys:
            self.company_rows[kind][key] = data.row
        return outcome


def _duplicate(outcome: RowOutcome, detail: str, reason: str) -> None:
    outcome.action, outcome.detail, outcome.reason = "duplicate", detail, reason


