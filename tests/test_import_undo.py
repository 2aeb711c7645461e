"""Undo touches only what the import did: not a record that got the id of one merged or deleted since (SQLite
reuses ids), not a free field or tag someone set since, not a created record someone edited since; undoing a
later import first leaves the earlier one's records removable."""

from __future__ import annotations

from sqlalchemy import select

from crm_inbox.contacts.inputs import ContactChanges
from crm_inbox.contacts.merge import merge_contacts
from crm_inbox.contacts.service import create_contact
from crm_inbox.db import unit_of_work
from crm_inbox.imports.readers import read_table
from crm_inbox.imports.service import run_import, undo_import
from crm_inbox.models import Contact, ImportChange


def run(factory, settings, text: str, mapping: dict[str, str]):  # type: ignore[no-untyped-def]
    table = read_table("list.csv", text.encode())
    return run_import(factory, settings, table, mapping, filename="list.csv", actor=None)


NAME_MAIL = {"Name": "name", "E-Mail": "email"}


def test_undo_leaves_alone_a_new_contact_with_the_id_of_a_merged_or_deleted_one(factory, settings):
    with unit_of_work(factory) as session:
        first = create_contact(session, ContactChanges(name="Erst Kunde", emails=("erst@example.org",)), "DE",
                               None).id
    done = run(factory, settings, "Name;E-Mail\nDoppel Kunde;doppel@example.org\nWeg Kunde;weg@example.org\n",
               NAME_MAIL)
    double, away = done.rows[0].contact_id, done.rows[1].contact_id
    with unit_of_work(factory) as session:  # the reviewer's sequence: merge the imported contact into another
        survivor, duplicate = session.get(Contact, first), session.get(Contact, double)
        assert survivor is not None and duplicate is not None
        assert merge_contacts(session, survivor, duplicate, None)["import_records"] == 1
        gone = session.get(Contact, away)
        session.delete(gone)  # removed by other means, without its import record
    with unit_of_work(factory) as session:
        bernd = create_contact(session, ContactChanges(name="Bernd Unbeteiligt"), "DE", None).id
        cora = create_contact(session, ContactChanges(name="Cora Unbeteiligt"), "DE", None).id
    if factory.kw["bind"].dialect.name == "sqlite":  # the ids are given again: what the undo must not remove
        assert {bernd, cora} == {double, away}
    assert undo_import(factory, done.batch_id, None) == {"removed": 0, "restored": 0, "kept": 0, "gone": 1,
                                                         "erased": 0}
    with factory() as session:
        assert session.execute(select(Contact.name).order_by(Contact.id)).scalars().all() == [
            "Erst Kunde", "Bernd Unbeteiligt", "Cora Unbeteiligt"]
        assert [e.email for e in session.get(Contact, first).emails] == [  # type: ignore[union-attr]
            "erst@example.org", "doppel@example.org"]  # the merge's, not the import's to take back


def test_undo_restores_free_fields_and_tags_one_by_one_and_keeps_an_edited_new_contact(factory, settings):
    with unit_of_work(factory) as session:
        anna = create_contact(session, ContactChanges(name="Anna Alt", emails=("anna@example.org",),
                                                      fields={"Hobby": "Segeln"}, tags=("alt",)), "DE", None).id
    mapping = {**NAME_MAIL, "Hobby": "field:Hobby", "Größe": "field:Größe", "Tags": "tags"}
    done = run(factory, settings, "Name;E-Mail;Hobby;Größe;Tags\nAnna Alt;anna@example.org;Golf;XL;messe\n"
                                  "Neu Kunde;neu@example.org;;;\n", mapping)
    with unit_of_work(factory) as session:  # staff work after the import
        contact = session.get(Contact, anna)
        assert contact is not None and contact.fields == {"Hobby": "Golf", "Größe": "XL"}
        contact.fields = {**contact.fields, "Größe": "M", "Farbe": "blau"}
        contact.tags = [*contact.tags, "vip"]
        new = session.get(Contact, done.rows[1].contact_id)
        assert new is not None
        new.title = "Dr."
    counts = undo_import(factory, done.batch_id, None)
    # Hobby and the tag "messe" restored, Größe kept (changed since), the edited new contact kept
    assert counts == {"removed": 0, "restored": 2, "kept": 2, "gone": 0, "erased": 0}
    with factory() as session:
        contact = session.get(Contact, anna)
        assert contact is not None and contact.fields == {"Hobby": "Segeln", "Größe": "M", "Farbe": "blau"}
        assert sorted(contact.tags) == ["alt", "vip"]
        assert session.get(Contact, done.rows[1].contact_id) is not None


def test_undoing_a_later_import_first_lets_the_earlier_remove_what_it_created(factory, settings):
    mapping = {**NAME_MAIL, "Telefon": "phone"}
    first = run(factory, settings, "Name;E-Mail;Telefon\nNeu Kunde;neu@example.org;\n", mapping)
    second = run(factory, settings, "Name;E-Mail;Telefon\nNeu Kunde;neu@example.org;030 1234567\n", mapping)
    assert (second.rows[0].action, second.rows[0].changed) == ("update", ["phone"])  # a number only, no column
    assert undo_import(factory, second.batch_id, None)["restored"] == 1
    assert undo_import(factory, first.batch_id, None)["removed"] == 1
    with factory() as session:
        assert session.execute(select(Contact)).first() is None
        assert session.execute(select(ImportChange.after).where(ImportChange.batch_id == first.batch_id)
                               ).scalar_one()["origin"] == "import"
