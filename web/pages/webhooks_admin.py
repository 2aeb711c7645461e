"""Admin pages for outbound webhooks: the subscriptions (URL, event types, active or disabled and why, failing
since), subscribing (the secret is shown once, on this answer only), changing, rotating the secret, deleting;
a subscription's recent deliveries with "retry" on one or on all failed ones, and "test-send". Rotating the
secret and deleting ask for a tick first: either breaks the receiver at once."""

from __future__ import annotations

import logging
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.models import WebhookSubscription
from crm_inbox.webhooks import subscriptions as subs
from web.pages.admin import admin_id
from web.pages.blueprint import pages
from web.pages.webhook_labels import SUBJECT_LABELS, event_choices, subject_url, typed_patterns
from web.requestdb import db, row_or_404, state

Page = tuple[str, int]
log = logging.getLogger(__name__)


def _patterns(form: Any) -> list[str]:
    """The ticked event types plus the patterns typed in ("company.*", "*"), in that order."""
    typed = form.get("patterns", "").replace(",", " ").split()
    return [*form.getlist("event_types"), *typed]


def _list_page(error: str | None = None, status: int = 200) -> Page:
    form = request.form
    return render_template("webhooks.html", subscriptions=subs.list_subscriptions(db()), error=error,
                           url=form.get("url", ""), description=form.get("description", ""),
                           choices=event_choices(_patterns(form)), typed=form.get("patterns", "")), status


def _detail_page(sub: WebhookSubscription, error: str | None = None, status: int = 200) -> Page:
    return render_template("webhooks_detail.html", sub=sub, deliveries=subs.deliveries(db(), sub.id),
                           failed=subs.failed_count(db(), sub.id), choices=event_choices(sub.event_types),
                           typed=typed_patterns(sub.event_types), subject_labels=SUBJECT_LABELS,
                           subject_url=subject_url, error=error), status


def _secret_page(sub: WebhookSubscription, rotated: bool) -> Page:
    return render_template("webhooks_secret.html", sub=sub, rotated=rotated), 200


@pages.get("/admin/webhooks")
def webhooks() -> Page:
    admin_id()
    return _list_page()


@pages.post("/admin/webhooks")
def webhook_create() -> Page:
    by = admin_id()
    try:
        sub = subs.create(db(), state().settings, url=request.form.get("url", ""),
                          event_types=_patterns(request.form), description=request.form.get("description"),
                          actor=by)
    except ValidationError as exc:
        log.info("webhook subscription refused: %s", exc.message)
        return _list_page(exc.message, 400)
    return _secret_page(sub, rotated=False)


@pages.get("/admin/webhooks/<int:subscription_id>")
def webhook(subscription_id: int) -> Page:
    admin_id()
    return _detail_page(row_or_404(WebhookSubscription, subscription_id))


@pages.post("/admin/webhooks/<int:subscription_id>")
def webhook_change(subscription_id: int) -> BaseResponse | Page:
    by = admin_id()
    sub = row_or_404(WebhookSubscription, subscription_id)
    form = request.form
    try:
        subs.change(db(), state().settings, sub.id, {"url": form.get("url", ""), "event_types": _patterns(form),
                                                      "description": form.get("description"),
                                                      "active": form.get("active") == "on"}, by)
    except ValidationError as exc:
        log.info("change of webhook subscription %s refused: %s", subscription_id, exc.message)
        db().rollback()
        return _detail_page(row_or_404(WebhookSubscription, subscription_id), exc.message, 400)
    flash(_("The subscription was saved."))
    return redirect(url_for("pages.webhook", subscription_id=sub.id))


@pages.post("/admin/webhooks/<int:subscription_id>/rotate")
def webhook_rotate(subscription_id: int) -> Page:
    by = admin_id()
    sub = row_or_404(WebhookSubscription, subscription_id)
    if request.form.get("confirm") != "1":  # the receiver rejects every delivery until it has the new secret
        log.info("new secret for webhook subscription %s refused: not confirmed", sub.id)
        return _detail_page(sub, _("Tick “Yes, the old secret stops working” to make a new secret."), 400)
    return _secret_page(subs.rotate_secret(db(), subscription_id, by), rotated=True)


@pages.post("/admin/webhooks/<int:subscription_id>/delete")
def webhook_delete(subscription_id: int) -> BaseResponse | Page:
    by = admin_id()
    sub = row_or_404(WebhookSubscription, subscription_id)
    if request.form.get("confirm") != "1":  # its deliveries go with it: only when ticked
        log.info("deleting webhook subscription %s refused: not confirmed", sub.id)
        return _detail_page(sub, _("Tick “Yes, delete” to delete the subscription."), 400)
    subs.delete(db(), subscription_id, by)
    flash(_("The subscription was deleted."))
    return redirect(url_for("pages.webhooks"))


@pages.post("/admin/webhooks/<int:subscription_id>/test")
def webhook_test(subscription_id: int) -> BaseResponse | Page:
    by = admin_id()
    sub = row_or_404(WebhookSubscription, subscription_id)
    try:
        subs.test_send(db(), sub.id, by)
    except Conflict:
        return _detail_page(sub, _("The subscription is disabled; enable it first."), 409)
    flash(_("A test event is on its way."))
    return redirect(url_for("pages.webhook", subscription_id=sub.id))


@pages.post("/admin/webhooks/<int:subscription_id>/retry-failed")
def webhook_retry_failed(subscription_id: int) -> BaseResponse | Page:
    by = admin_id()
    sub = row_or_404(WebhookSubscription, subscription_id)
    try:
        count = subs.retry_failed(db(), sub.id, by)
    except Conflict:
        return _detail_page(sub, _("The subscription is disabled; enable it first."), 409)
    flash(ngettext("%(num)d failed delivery will be sent again now.",
                   "%(num)d failed deliveries will be sent again now.", count))
    return redirect(url_for("pages.webhook", subscription_id=sub.id))


@pages.post("/admin/webhooks/<int:subscription_id>/deliveries/<int:delivery_id>/retry")
def webhook_retry(subscription_id: int, delivery_id: int) -> BaseResponse:
    by = admin_id()
    row_or_404(WebhookSubscription, subscription_id)
    try:
        subs.retry(db(), subscription_id, delivery_id, by)
    except NotFound:
        abort(404)
    flash(_("The delivery will be sent again now."))
    return redirect(url_for("pages.webhook", subscription_id=subscription_id))
