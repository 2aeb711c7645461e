"""Data protection on the customer page (admins only): download everything stored about the person, and
erase the person after a confirmation."""

from __future__ import annotations

import tempfile

from flask import Response, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.models import Contact, StaffRole
from crm_inbox.privacy import service as privacy
from web.auth import current_user
from web.pages.blueprint import pages
from web.requestdb import db, row_or_404, state


def admin_id() -> int:
    """The logged-in user's id if they are an admin; 403 for everybody else."""
    user = current_user()
    if user is None or user.role != StaffRole.ADMIN:
        abort(403)
    return user.id


@pages.get("/contacts/<int:contact_id>/export")
def contact_export(contact_id: int) -> Response:
    by = admin_id()
    row_or_404(Contact, contact_id)
    archive = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115  (send_file closes it)
    privacy.write_export(db(), contact_id, archive, by, settings=state().settings)
    archive.seek(0)
    response = send_file(archive, mimetype="application/zip", as_attachment=True,
                         download_name=f"contact-{contact_id}-export.zip", max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@pages.post("/contacts/<int:contact_id>/erase")
def contact_erase(contact_id: int) -> BaseResponse | str:
    by = admin_id()
    person = row_or_404(Contact, contact_id)
    if request.form.get("confirm") != "1":
        return render_template("contact_erase.html", contact=person)
    counts = privacy.erase_contact(db(), contact_id, by, settings=state().settings)
    flash(_("Contact %(id)s was erased with everything stored about them.", id=contact_id))
    if counts.get("quotes_kept") or counts.get("orders_kept"):
        flash(_("Kept, without the person: %(quotes)d quotes and %(orders)d orders with their PDFs. They are "
                "commercial letters that § 257 HGB and § 147 AO require to be kept (GDPR Art. 17 (3)(b)); the "
                "person's name is removed from their address.",
                quotes=counts.get("quotes_kept", 0), orders=counts.get("orders_kept", 0)))
    return redirect(url_for("pages.contacts"))
