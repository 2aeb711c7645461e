"""Admin page for the phone-book URLs of desk phones and routers: list, make one (its URLs are shown once),
revoke one (after a tick: phones using it lose the names at once)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.phone_book.formats import FORMATS
from crm_inbox.phone_book.tokens import all_tokens, create_token, revoke_token
from web.pages.admin import admin_id
from web.pages.blueprint import pages
from web.requestdb import db, state


def _page(urls: dict[str, str] | None = None, label: str = "", error: str | None = None,
          status: int = 200) -> tuple[str, int]:
    return render_template("phone_books.html", tokens=all_tokens(db()), urls=urls, label=label, error=error,
                           enabled=state().settings.phone_book.enabled), status


@pages.get("/admin/phone-books")
def phone_books() -> tuple[str, int]:
    admin_id()
    return _page()


@pages.post("/admin/phone-books")
def phone_book_create() -> tuple[str, int]:
    by = admin_id()
    label = request.form.get("label", "")
    try:
        row, token = create_token(db(), label, by)
    except ValidationError:
        return _page(label=label[:200], error=_("Give the phone book a name of at most 100 characters, "
                                                "e.g. “Fritz!Box office”."), status=400)
    # [web] base_url when set: the address phones reach, not the one this admin's browser happens to use.
    base = state().settings.web.base_url.rstrip("/") or request.host_url.rstrip("/")
    urls = {name: base + url_for("feeds.phone_book_feed", token=token, filename=name) for name in FORMATS}
    return _page(urls=urls, label=row.label)


@pages.post("/admin/phone-books/<int:token_id>/revoke")
def phone_book_revoke(token_id: int) -> BaseResponse | tuple[str, int]:
    by = admin_id()
    if request.form.get("confirm") != "1":  # phones using it lose the names at once: only when ticked
        return _page(error=_("Tick “Yes, switch it off” to switch the phone book off."), status=400)
    try:
        row = revoke_token(db(), token_id, by)
    except NotFound:
        return _page(error=_("This phone book does not exist."), status=404)
    except Conflict:
        return _page(error=_("This phone book is switched off already."), status=409)
    flash(_("The phone book “%(label)s” is switched off: its URLs answer nothing any more.", label=row.label))
    return redirect(url_for("pages.phone_books"))
