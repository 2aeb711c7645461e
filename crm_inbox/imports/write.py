"""Carrying out an import's plan: compare matched records with their current values (only fields the row fills
and that differ change; addresses and numbers are added, never replaced), then write everything with Core bulk
statements in chunks, and one ``ImportChange`` per created or updated record (the old values of exactly the
changed fields, so undo can restore them)."""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from crm_inbox.imports.differences import company_names, differences
from crm_inbox.imports.index import State, company_states, contact_states
from crm_inbox.imports.plan import CompanyPlan, PersonPlan, Planner
from crm_inbox.imports.rows import PERSON_FIELDS
from crm_inbox.models import Company, CompanyDomain, CompanyPhone, Contact, ContactEmail, ContactPhone, ImportChange
from crm_inbox.models.base import utcnow
from crm_inbox.models.contacts import Role, search_key
from crm_inbox.phone import block_prefix

CHUNK = 2000
ORIGIN = "import"
_NAMED_FIELDS = (*PERSON_FIELDS, "website", "industry")
_ADDRESS = ("street", "postcode", "city", "country")
# Rows gathered and sent in chunks; contacts' before companies' (the order of the foreign keys does not matter).
_LIST_TABLES: tuple[Table, ...] = (ContactEmail.__table__, ContactPhone.__table__, CompanyPhone.__table__,
                                   CompanyDomain.__table__, ImportChange.__table__)


def plain(value: Any) -> Any:
    """JSON-ready (enums as their values), for ``ImportChange.before/after``."""
    return value.value if isinstance(value, enum.Enum) else value


def changed_labels(changes: dict[str, Any], old_fields: dict[str, Any] | None) -> list[str]:
    """The changed fields as the page names them (the mapping's target keys, "field:<name>" for free fields)."""
    out: list[str] = []
    for column in changes:
        if column == "fields":
            old = old_fields or {}
            out += [k if k in _NAMED_FIELDS else f"field:{k}" for k, v in changes["fields"].items() if old.get(k) != v]
        elif column != "updated_at":
            out.append({"company_id": "company", "emails": "email", "phones": "phone", "domains": "domain"}
                       .get(column, column))
    return out


class Writer:
    """Writes as it goes, in chunks: the people are compared and inserted ``CHUNK`` at a time, and the rows
    of addresses, numbers and changes are sent whenever ``CHUNK`` have gathered (memory stays flat)."""

    def __init__(self, session: Session, planner: Planner, batch_id: int) -> None:
        self.session, self.planner, self.batch_id = session, planner, batch_id
        self.now = utcnow()
        self.updates: dict[tuple[Table, frozenset[str]], list[dict[str, Any]]] = defaultdict(list)
        self.pending: dict[Table, list[dict[str, Any]]] = {t: [] for t in _LIST_TABLES}
        self.counts = {"companies_new": 0, "companies_update": 0}
        self.created_contacts: set[int] = set()
        self.created_companies: set[int] = set()

    def run(self) -> None:
        self._existing_companies()
        self._new_companies()
        self._send_updates()
        people = self.planner.people
        for start in range(0, len(people), CHUNK):
            self._people(people[start:start + CHUNK])
            self._send_updates()
        for table in _LIST_TABLES:
            self._send(table, force=True)

    def _send_updates(self) -> None:
        for key in list(self.updates):
            self._update(key[0], self.updates.pop(key))

    def _add(self, table: Table, rows: list[dict[str, Any]]) -> None:
        self.pending[table] += rows
        self._send(table)

    def _send(self, table: Table, force: bool = False) -> None:
        rows = self.pending[table]
        if rows and (force or len(rows) >= CHUNK):
            self.session.execute(insert(table), rows)
            self.pending[table] = []

    def _change(self, kind: str, ident: int, action: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        self._add(ImportChange.__table__, [{"batch_id": self.batch_id, "object_type": kind, "object_id": ident,
                                            "action": action, "before": before, "after": after}])

    def _created(self, name: str | None) -> dict[str, Any]:
        """What identifies the very row created: SQLite may give its id to another record once it is deleted."""
        return {"name": name, "origin": ORIGIN, "created_at": self.now.isoformat()}

    # --- companies ---

    def _existing_companies(self) -> None:
        plans = self.planner.existing_companies
        states = company_states(self.session, plans)
        for ident, plan in plans.items():
            state = states[ident]
            changes: dict[str, Any] = {}
            for column, value in plan.values.items():
                if value is not None and state.values[column] != value:
                    changes[column] = value
            fill = dict(plan.fill)
            if any(state.values[c] for c in _ADDRESS):  # an address is taken whole or not at all, never mixed
                fill = {c: v for c, v in fill.items() if c not in _ADDRESS}
            for column, value in fill.items():
                if column not in plan.values and value is not None and not state.values[column]:
                    changes[column] = value
            old_fields = state.values["fields"] or {}
            fields = {**{k: v for k, v in plan.fill_fields.items() if k not in old_fields}, **old_fields,
                      **plan.fields}
            if fields != old_fields:
                changes["fields"] = fields
            self._tags(changes, state, plan.tags)
            phones = [p for p in plan.phones if (p[1] or p[0]) not in state.phone_keys]
            domains = [] if state.domains else plan.domains[:1]  # one domain from its people, if it has none
            self._record_update("company", ident, Company.__table__, state, changes, phones, domains)
            if plan.outcome is not None:
                self._outcome_of_update(plan.outcome, changes, old_fields, phones, domains)
                plan.outcome.values = differences(changes, state.values, old_fields=old_fields, company_names={},
                                                  phones=[p[0] for p in phones], domains=domains)
            if changes or phones or domains:
                self.counts["companies_update"] += 1
            self._company_lists(ident, phones, domains)

    def _new_companies(self) -> None:
        plans = list(self.planner.new_companies.values())
        rows = []
        for plan in plans:
            values = {**plan.fill, **plan.values}
            rows.append({"name": plan.name, "search_name": search_key(plan.name), "origin": ORIGIN,
                         "tags": list(plan.tags), "fields": {**plan.fill_fields, **plan.fields},
                         "created_at": self.now, "updated_at": self.now,
                         **{c: values.get(c) for c in ("customer_number", "street", "postcode", "city", "country",
                                                        "category", "industry")}})
        for plan, ident in zip(plans, self._insert(Company.__table__, rows), strict=True):
            plan.id = ident
            self.created_companies.add(ident)
            self._change("company", ident, "created", {}, self._created(plan.name))
            self._company_lists(ident, plan.phones, plan.domains[:1])
            if plan.outcome is not None:
                plan.outcome.company_id = ident
        self.counts["companies_new"] = len(plans)

    def _company_lists(self, ident: int, phones: Sequence[tuple[str, str | None, str]], domains: list[str]) -> None:
        self._add(CompanyPhone.__table__, [{"company_id": ident, "label": label, "raw": raw, "e164": e164,
                                            "block_prefix": block_prefix(raw, e164)} for raw, e164, label in phones])
        self._add(CompanyDomain.__table__, [{"company_id": ident, "domain": d} for d in domains])

    # --- people ---

    def _people(self, people: list[PersonPlan]) -> None:
        states = contact_states(self.session, [p.existing for p in people if p.existing is not None])
        # A changed company is shown by name: the old one's and the matched one's from the database, a new one's
        # as the file names it.
        names = company_names(self.session, {s.values["company_id"] for s in states.values()}
                              | {p.company.existing for p in people if p.company is not None})
        names.update({c.id: c.name for c in self.planner.new_companies.values() if c.id is not None})
        new: list[PersonPlan] = []
        for plan in people:
            company_id = plan.company.id if plan.company else plan.company_id
            if plan.existing is None:
                new.append(plan)
                continue
            state = states[plan.existing]
            data = plan.data
            changes = {c: v for c, v in data.contact.items() if v is not None and state.values[c] != v}
            if plan.company is not None and state.values["company_id"] != company_id:
                changes["company_id"] = company_id
            old_fields = state.values["fields"] or {}
            if any(old_fields.get(k) != v for k, v in data.fields.items()):
                changes["fields"] = {**old_fields, **data.fields}
            self._tags(changes, state, data.tags)
            emails = [(e, label) for e, label in data.emails if e not in state.emails]
            phones = [p for p in data.phones if (p[1] or p[0]) not in state.phone_keys]
            self._record_update("contact", plan.existing, Contact.__table__, state, changes, phones, [],
                                emails=[e for e, _ in emails])
            self._outcome_of_update(plan.outcome, changes, old_fields, phones, [], bool(emails))
            plan.outcome.values = differences(changes, state.values, old_fields=old_fields, company_names=names,
                                              emails=[e for e, _ in emails], phones=[p[0] for p in phones])
            plan.outcome.company_id = company_id if plan.company else state.values["company_id"]
            self._contact_lists(plan.existing, emails, phones)
        rows = [self._new_contact(plan, plan.company.id if plan.company else plan.company_id) for plan in new]
        for plan, ident in zip(new, self._insert(Contact.__table__, rows), strict=True):
            plan.outcome.contact_id = ident
            self.created_contacts.add(ident)
            plan.outcome.company_id = plan.company.id if plan.company else plan.company_id
            self._change("contact", ident, "created", {}, self._created(plan.data.name))
            self._contact_lists(ident, plan.data.emails, plan.data.phones)

    def _new_contact(self, plan: PersonPlan, company_id: int | None) -> dict[str, Any]:
        values = plan.data.contact
        return {"name": values.get("name"), "search_name": search_key(values.get("name")), "company_id": company_id,
                "role": values.get("role") or Role.LEAD, "origin": ORIGIN, "tags": sorted(set(plan.data.tags)),
                "fields": dict(plan.data.fields), "created_at": self.now, "updated_at": self.now,
                **{c: values.get(c) for c in ("salutation", "title", "customer_number", "street", "postcode", "city",
                                               "country", "category")}}

    def _contact_lists(self, ident: int, emails: Sequence[tuple[str, str]],
                       phones: Sequence[tuple[str, str | None, str]]) -> None:
        self._add(ContactEmail.__table__, [{"contact_id": ident, "email": e, "label": label, "bouncing": False}
                                           for e, label in emails])
        self._add(ContactPhone.__table__, [{"contact_id": ident, "label": label, "raw": raw, "e164": e164}
                                           for raw, e164, label in phones])

    # --- shared ---

    @staticmethod
    def _tags(changes: dict[str, Any], state: State, tags: list[str]) -> None:
        old = list(state.values["tags"] or [])
        added = [t for t in tags if t not in old]
        if added:
            changes["tags"] = sorted({*old, *added})

    def _record_update(self, kind: str, ident: int, table: Table, state: State, changes: dict[str, Any],
                       phones: Sequence[tuple[str, str | None, str]], domains: list[str], *,
                       emails: Sequence[str] = ()) -> None:
        if not (changes or phones or domains or emails):
            return
        before = {c: plain(state.values[c]) for c in changes}
        after = {c: plain(v) for c, v in changes.items()}
        if emails:
            before["emails"], after["emails"] = list(state.emails), [*state.emails, *emails]
        if phones:
            before["phones"], after["phones"] = list(state.phones), [*state.phones, *(p[0] for p in phones)]
        if domains:
            before["domains"], after["domains"] = list(state.domains), [*state.domains, *domains]
        if state.updated_at is not None:  # so that undoing all of it leaves the record as it was
            before["updated_at"], after["updated_at"] = state.updated_at.isoformat(), self.now.isoformat()
        self._change(kind, ident, "updated", before, after)
        values = {**changes, "updated_at": self.now}
        self.updates[(table, frozenset(values))].append({"b_id": ident, **{f"v_{c}": v for c, v in values.items()}})

    @staticmethod
    def _outcome_of_update(outcome: Any, changes: dict[str, Any], old_fields: dict[str, Any],
                           phones: Sequence[Any], domains: list[str], emails: bool = False) -> None:
        labels = changed_labels(changes, old_fields)
        labels += (["email"] if emails else []) + (["phone"] if phones else []) + (["domain"] if domains else [])
        outcome.action = "update" if labels else "unchanged"
        outcome.changed = labels

    def _insert(self, table: Table, rows: list[dict[str, Any]]) -> list[int]:
        """Insert ``rows``; their new ids in order. PostgreSQL returns them in order (RETURNING); SQLite would
        be asked row by row for that, so there the rows go in one executemany and the ids are read back: this
        transaction holds SQLite's only write lock (the batch row is written first), so nobody else's rows
        can be among them, and a count that does not match fails the import rather than guess."""
        ids: list[int] = []
        sqlite = self.session.get_bind().dialect.name == "sqlite"
        stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start:start + CHUNK]
            if not sqlite:
                ids += self.session.execute(stmt, chunk).scalars().all()
                continue
            before = self.session.execute(select(func.max(table.c.id))).scalar() or 0
            self.session.execute(insert(table), chunk)
            new = self.session.execute(select(table.c.id).where(table.c.id > before).order_by(table.c.id)
                                       ).scalars().all()
            if len(new) != len(chunk):
                raise RuntimeError(f"{table.name}: {len(new)} new rows where {len(chunk)} were inserted")
            ids += new
        return ids

    def _update(self, table: Table, rows: list[dict[str, Any]]) -> None:
        columns = [k[2:] for k in rows[0] if k.startswith("v_")]
        stmt = update(table).where(table.c.id == bindparam("b_id")).values(
            {c: bindparam(f"v_{c}", type_=table.c[c].type) for c in columns})
        for start in range(0, len(rows), CHUNK):
            self.session.execute(stmt, rows[start:start + CHUNK])


__all__ = ["CompanyPlan", "Writer", "changed_labels", "plain"]
