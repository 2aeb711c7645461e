"""Webhook subscriptions over the API (admins only): subscribe, change, rotate the secret, delete, the
deliveries, retry one or all failed, test-send. The secret appears in the answers to create and rotate only."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from crm_inbox.models import WebhookDelivery, WebhookSubscription
from crm_inbox.webhooks import subscriptions as subs
from web.api.blueprint import api
from web.api.errors import int_arg, json_body
from web.api.serialize import when
from web.auth import actor_id, require_token
from web.requestdb import db, state

BASE = "/webhook-subscriptions"


def subscription_json(sub: WebhookSubscription, *, secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": sub.id, "url": sub.url, "event_types": list(sub.event_types), "description": sub.description,
        "active": sub.active, "failing_since": when(sub.failing_since), "disabled_at": when(sub.disabled_at),
        "disabled_reason": sub.disabled_reason, "created_at": when(sub.created_at)}
    if secret:
        out["secret"] = sub.secret
    return out


def delivery_json(delivery: WebhookDelivery, event_type: str | None = None) -> dict[str, Any]:
    return {"id": delivery.id, "event_id": delivery.event_id, "webhook_id": f"evt_{delivery.event_id}",
            "event_type": event_type, "state": delivery.state.value, "attempts": delivery.attempts,
            "response_code": delivery.response_code, "last_error": delivery.last_error,
            "last_attempt_at": when(delivery.last_attempt_at), "next_attempt_at": when(delivery.next_attempt_at),
            "delivered_at": when(delivery.delivered_at), "created_at": when(delivery.created_at)}


@api.get(BASE)
@require_token(admin=True)
def list_webhook_subscriptions() -> Response:
    return jsonify(items=[subscription_json(s) for s in subs.list_subscriptions(db())])


@api.post(BASE)
@require_token(write=True, admin=True)
def create_webhook_subscription() -> tuple[Response, int]:
    data = json_body()
    sub = subs.create(db(), state().settings, url=data.get("url"), event_types=data.get("event_types"),
                      description=data.get("description"), actor=actor_id())
    return jsonify(subscription_json(sub, secret=True)), 201


@api.get(f"{BASE}/<int:sub_id>")
@require_token(admin=True)
def get_webhook_subscription(sub_id: int) -> Response:
    return jsonify(subscription_json(subs.get(db(), sub_id)))


@api.patch(f"{BASE}/<int:sub_id>")
@require_token(write=True, admin=True)
def patch_webhook_subscription(sub_id: int) -> Response:
    return jsonify(subscription_json(subs.change(db(), state().settings, sub_id, json_body(), actor_id())))


@api.delete(f"{BASE}/<int:sub_id>")
@require_token(write=True, admin=True)
def delete_webhook_subscription(sub_id: int) -> Response:
    subs.delete(db(), sub_id, actor_id())
    return Response(status=204)


@api.post(f"{BASE}/<int:sub_id>/rotate-secret")
@require_token(write=True, admin=True)
def rotate_webhook_secret(sub_id: int) -> Response:
    return jsonify(subscription_json(subs.rotate_secret(db(), sub_id, actor_id()), secret=True))


@api.get(f"{BASE}/<int:sub_id>/deliveries")
@require_token(admin=True)
def list_webhook_deliveries(sub_id: int) -> Response:
    rows = subs.deliveries(db(), sub_id, int_arg("limit", 50, 1, 500))
    return jsonify(items=[delivery_json(r.delivery, r.event_type) for r in rows])


@api.post("/webhook-deliveries/<int:delivery_id>/retry")
@require_token(write=True, admin=True)
def retry_webhook_delivery(delivery_id: int) -> Response:
    return jsonify(delivery_json(subs.retry(db(), None, delivery_id, actor_id())))


@api.post(f"{BASE}/<int:sub_id>/retry-failed")
@require_token(write=True, admin=True)
def retry_failed_webhook_deliveries(sub_id: int) -> Response:
    return jsonify(retried=subs.retry_failed(db(), sub_id, actor_id()))


@api.post(f"{BASE}/<int:sub_id>/test")
@require_token(write=True, admin=True)
def test_webhook_subscription(sub_id: int) -> tuple[Response, int]:
    return jsonify(delivery_json(subs.test_send(db(), sub_id, actor_id()), "webhook.test")), 202
