"""Deciding, row by row, what an import does: new, updates a record, unchanged, duplicate or error. Matching
uses the keys loaded up front and the rows before (never the wrong customer: several candidates make a
duplicate the page names). Nothing is written here; ``imports.write`` carries the plan out."""

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
    detail: str = ""  # duplicate: "contact 123 (same e-mail)" / "row 7"; error: the reason


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


_WHAT = {"cn": "customer number", "email": "e-mail", "phone": "phone", "name": "name"}


def _names(kind: str, candidates: dict[int, str]) -> str:
    ids = sorted(candidates)
    word = kind if len(ids) == 1 else {"contact": "contacts", "company": "companies"}[kind]
    return f"{word} " + ", ".join(f"{i} (same {_WHAT[candidates[i]]})" for i in ids)


class Planner:
    def __init__(self, index: KeyIndex, headers: list[str], mapping: dict[str, str], region: str,
                 free_mail: frozenset[str], own_domains: frozenset[str]) -> None:
        self.index, self.headers, self.mapping, self.region = index, headers, mapping, region
        self.free_mail, self.own_domains = free_mail, own_domains
        self.outcomes: list[RowOutcome] = []
        self.people: list[PersonPlan] = []
        self.existing_companies: dict[int, CompanyPlan] = {}
        self.new_companies: dict[str, CompanyPlan] = {}  # by company key
        self.file_keys: dict[str, dict[str, int]] = {"cn": {}, "email": {}, "phone": {}}
        self.company_rows: dict[str, dict[str, int]] = {"name": {}, "cn": {}}
        self.claimed_domains: set[str] = set()
        self.matched: dict[tuple[str, int], int] = {}  # (kind, existing id) → the row that matched it first

    def add(self, number: int, cells: list[str]) -> None:
        try:
            data = read_row(number, self.headers, cells, self.mapping, self.region)
        except RowError as exc:
            self.outcomes.append(RowOutcome(number, "error", self._label(cells), detail=str(exc)))
            return
        if data is None:
            return  # an empty row
        outcome = self._person(data) if data.person else self._company_row(data)
        self.outcomes.append(outcome)

    def _label(self, cells: list[str]) -> str:
        """Who a row that cannot be read is: its name, company or address cells as they are."""
        given = {self.mapping.get(h): c.strip() for h, c in zip(self.headers, cells, strict=False) if c and c.strip()}
        name = given.get("name") or " ".join(p for p in (given.get("first_name"), given.get("last_name")) if p)
        parts = [p for p in (name, given.get("company")) if p] or [given.get("email") or given.get("phone") or ""]
        return ", ".join(parts)[:200]

    # --- people ---

    def _person(self, data: RowData) -> RowOutcome:
        outcome = RowOutcome(data.row, "new", data.label)
        keys = ([("cn", data.contact["customer_number"])] if data.contact.get("customer_number") else []) \
            + [("email", e) for e, _ in data.emails] + [("phone", p) for _, p, _ in data.phones if p]
        for kind, key in keys:
            if key in self.file_keys[kind]:
                return _duplicate(outcome, f"row {self.file_keys[kind][key]} (same {_WHAT[kind]})")
        table = {"cn": self.index.contact_cn, "email": self.index.contact_email, "phone": self.index.contact_phone}
        candidates: dict[int, str] = {}
        for kind, key in keys:
            for ident in ids(table[kind], key):
                candidates.setdefault(ident, kind)
        if len(candidates) > 1:
            return _duplicate(outcome, _names("contact", candidates))
        company: CompanyPlan | None = None
        if data.company_key:
            found = self._company_named(data)
            if isinstance(found, str):
                return _duplicate(outcome, found)
            company = found
        existing = next(iter(candidates), None)
        if existing is not None and ("contact", existing) in self.matched:  # found by another key before
            return _duplicate(outcome, f"row {self.matched[('contact', existing)]} (same contact)")
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

    def _company_named(self, data: RowData) -> CompanyPlan | str:
        """The company a person row names: an existing one by key, or one this import creates; a text when
        several companies have that name."""
        found = ids(self.index.company_key, data.company_key)
        if len(found) > 1:
            return _names("company", dict.fromkeys(found, "name"))
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
                return _duplicate(outcome, f"row {self.company_rows[kind][key]} (same {_WHAT[kind]})")
        candidates: dict[int, str] = {}
        for kind, key in keys:
            for ident in ids(self.index.company_key if kind == "name" else self.index.company_cn, key):
                candidates.setdefault(ident, kind)
        if len(candidates) > 1:
            return _duplicate(outcome, _names("company", candidates))
        if candidates:
            ident = next(iter(candidates))
            if ("company", ident) in self.matched:
                return _duplicate(outcome, f"row {self.matched[('company', ident)]} (same company)")
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


def _duplicate(outcome: RowOutcome, detail: str) -> RowOutcome:
    outcome.action, outcome.detail = "duplicate", detail
    return outcome


