"""The pages the people we write to open from a mail, outside any login: the one-click opt-out and the double
opt-in confirmation.

RFC 8058: a mailbox provider's "unsubscribe" button POSTs ``List-Unsubscribe=One-Click`` to the link, without
cookies and without anything of ours but the URL; a GET (a person's click, or a link scanner fetching every link
in a mail) only shows a page with a button. So only a POST acts, and it needs no session and no CSRF token: the
signed token in the URL is the whole authority (it can do nothing but opt its one person out, or confirm the one
pending double opt-in it names). This blueprint therefore sits apart from the staff pages and their guard (which
checks the CSRF token on every POST), as the phone-system webhooks do. Bad or expired links answer 400 with a
page saying so, never 500.
"""

from __future__ import annotations

import logging

from flask import Blueprint, render_template, request
from flask_babel import gettext as _

from crm_inbox.campaigns.responses import record_opt_out
from crm_inbox.consent import double_opt_in
from crm_inbox.errors import Conflict, ValidationError
from web.requestdb import db, state

log = logging.getLogger(__name__)
public_consent = Blueprint("public_consent", __name__)

def _secret() -> str:
    return double_opt_in.instance_secret(state().settings)


def _company() -> str:
    return state().settings.company.name


def _bad_link(exc: ValidationError | Conflict, status: int = 400) -> tuple[str, int]:
    """The page for a link that cannot act: cut off, forged, expired, or overtaken by an opt-out."""
    log.info("%s %s refused: %s", request.method, request.path.split("/")[1], exc)
    if isinstance(exc, Conflict):
        message = _("You unsubscribed after asking for this confirmation, so it no longer counts. If you want "
                    "our mail again, please subscribe again.")
    elif "expired" in exc.message:
        message = _("This confirmation link has expired. Please subscribe again to get a new one.")
    else:
        message = _("This link is not valid. It may have been cut off: please open it from the mail again, or "
                    "copy the whole address into your browser.")
    return render_template("consent_public_error.html", message=message, company=_company()), status


@public_consent.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> str:
    """The confirmation page: acts on nothing (link scanners and previews fetch every link)."""
    return render_template("unsubscribe.html", token=token, done=None, company=_company())


@public_consent.post("/unsubscribe/<token>")
def unsubscribe(token: str) -> str | tuple[str, int]:
    """The one-click opt-out (RFC 8058; also the page's button): at once, idempotent, no cookie, no CSRF token."""
    try:
        done = double_opt_in.unsubscribe(db(), _secret(), token, ip=request.remote_addr)
    except ValidationError as exc:
        return _bad_link(exc)
    if done.record is not None:  # the campaign whose mail carried the link counts it (opted_out_at); idempotent
        record_opt_out(db(), done.record.contact_id, at=done.record.occurred_at, campaign_id=done.campaign_id)
    log.info("one-click opt-out (%s): %s", done.channel.value,
             "already opted out" if done.already else "suppressed" if done.suppressed else "opted out")
    return render_template("unsubscribe.html", token=token, done=done, company=_company())


@public_consent.get("/consent/confirm/<token>")
def confirm_page(token: str) -> str:
    """The double opt-in link's page: a button that confirms (a scanner's GET must not opt anybody in)."""
    return render_template("consent_confirm.html", token=token, done=None, company=_company())


@public_consent.post("/consent/confirm/<token>")
def confirm(token: str) -> str | tuple[str, int]:
    """The click that gives consent: recorded with its time, IP and browser as the proof; a repeat changes
    nothing."""
    try:
        done = double_opt_in.confirm(db(), _secret(), token, ip=request.remote_addr,
                                     user_agent=request.headers.get("User-Agent"))
    except ValidationError as exc:
        return _bad_link(exc)
    except Conflict as exc:
        return _bad_link(exc, 409)
    return render_template("consent_confirm.html", token=token, done=done, company=_company())
