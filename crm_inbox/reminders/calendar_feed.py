"""A staff member's open reminders as an iCalendar feed (RFC 5545), for Outlook or Thunderbird."""

from __future__ import annotations

from datetime import timedelta

from icalendar import Alarm, Calendar, Event
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from crm_inbox.config import Settings
from crm_inbox.models import Reminder, StaffUser
from crm_inbox.models.reminders import ACTIVE_STATES
from crm_inbox.reminders.service import notification_text, page_url

EVENT_MINUTES = 15  # a reminder is a point in time; calendars show it as a short appointment


def open_reminders_feed(session: Session, settings: Settings, user: StaffUser, *, include_team: bool = True,
                        limit: int = 2000) -> bytes:
    who = Reminder.assignee_id == user.id
    if include_team:
        who = or_(who, Reminder.assignee_id.is_(None))
    rows = session.execute(select(Reminder).where(who, Reminder.state.in_(ACTIVE_STATES))
                           .order_by(Reminder.due_at).limit(limit)).scalars()
    domain = settings.notifications.from_address.rpartition("@")[2] or "localhost"
    calendar = Calendar()
    calendar.add("prodid", "-//CRM Inbox//Reminders//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"CRM Inbox: {user.name}")
    for reminder in rows:
        _subject, body = notification_text(session, settings, reminder)
        event = Event()
        # Stable per reminder: a snoozed reminder moves in the subscriber's calendar instead of doubling.
        event.add("uid", f"reminder-{reminder.id}@{domain}")
        event.add("summary", reminder.title)
        event.add("dtstart", reminder.due_at)
        event.add("dtend", reminder.due_at + timedelta(minutes=EVENT_MINUTES))
        event.add("dtstamp", reminder.updated_at)
        event.add("last-modified", reminder.updated_at)
        event.add("description", body)
        event.add("categories", [reminder.reason])
        if reminder.contact_id:
            event.add("url", page_url(settings, f"/contacts/{reminder.contact_id}"))
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", reminder.title)
        alarm.add("trigger", timedelta(0))
        event.add_component(alarm)
        calendar.add_component(event)
    return calendar.to_ical()
