"""Merging a duplicate contact into the one whose page it is, after a confirmation (crm_inbox.contacts.merge)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.contacts.lookup import contacts_named_by
from crm_inbox.contacts.merge import merge_contacts
from crm_inbox.models import Contact
from web.auth import editor_id
from web.pages.blueprint import pages
from web.requestdb import db, row_or_404


@pages.post("/contacts/<int:contact_id>/merge")
def contact_merge(contact_id: int) -> BaseResponse | str:
    """Merge a duplicate (by id or e-mail address) into this contact, after a confirmation."""
    by = editor_id()
    survivor = row_or_404(Contact, contact_id)
    wanted = request.form.get("duplicate", "").strip()
    matches = [c for c in contacts_named_by(db(), wanted) if c.id != contact_id]
    if len(matches) != 1:
        flash(_("No single other contact is “%(wanted)s”: give its number (from its address bar) or e-mail address.",
                wanted=wanted))
        return redirect(url_for("pages.contact", contact_id=contact_id))
    duplicate = matches[0]
    if request.form.get("confirm") != "1":
        return render_template("contact_merge.html", survivor=survivor, duplicate=duplicate)
    name = duplicate.display_name
    merge_contacts(db(), survivor, duplicate, by)
    flash(_("%(name)s was merged into %(survivor)s.", name=name, survivor=survivor.display_name))
    return redirect(url_for("pages.contact", contact_id=contact_id))
