"""The mail to the admins when a failing subscription is disabled: one per disabling (the outbox's dedupe key
holds the time of the disabling), queued in the transaction that disables it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_inbox import outbox
from crm_inbox.config import Settings
from crm_inbox.models import StaffRole, StaffUser, WebhookSubscription
from crm_inbox.text import single_line


def admin_addresses(session: Session) -> list[str]:
    admins = session.execute(select(StaffUser).where(StaffUser.active.is_(True), StaffUser.role == StaffRole.ADMIN)
                             .order_by(StaffUser.id)).scalars().all()
    return list(dict.fromkeys(a.primary_email for a in admins if a.primary_email))


def text(settings: Settings, sub: WebhookSubscription, held: int) -> tuple[str, str]:
    base = settings.web.base_url.rstrip("/") or f"http://{settings.web.host}:{settings.web.port}"
    url = single_line(sub.url)
    lines = [
        f"Webhook abgeschaltet / Webhook disabled: {url}", "",
        "Die Webhook-Adresse hat zu lange keine Zustellung angenommen und wurde abgeschaltet. Offene Zustellungen "
        "und neue Ereignisse werden aufbewahrt; nach dem Wiedereinschalten gehen sie hinaus.",
        "The webhook address accepted no delivery for too long and was disabled. Pending deliveries and new "
        "events are kept; they go out once it is enabled again.", "",
        f"Reason:   {single_line(sub.disabled_reason or '')}",
        f"Waiting:  {held} deliveries", "",
        f"Enable it again: {base}/admin/webhooks/{sub.id}", ""]
    return f"Webhook abgeschaltet: {url}"[:200], "\n".join(lines)


def disabled(session: Session, settings: Settings, sub: WebhookSubscription, held: int) -> int:
    """Queue the notice to every active admin; returns to how many."""
    if sub.disabled_at is None:
        return 0
    subject, body = text(settings, sub, held)
    addresses = admin_addresses(session)
    for address in addresses:
        outbox.enqueue(session, settings, purpose="webhook_disabled",
                       dedupe_key=f"webhook-disabled:{sub.id}:{sub.disabled_at.isoformat()}:{address}",
                       to=address, subject=subject, body=body, load=False,
                       headers={"Auto-Submitted": "auto-generated", "X-CRM-Inbox-Webhook": str(sub.id)})
    return len(addresses)
