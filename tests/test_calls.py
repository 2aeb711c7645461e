"""Phone-system webhooks, replayed as the systems send them, through Flask's test client: what a user
then sees on the contact's timeline, in the list of calls (missed, to call back, unassigned) and in the
caller lookup a PBX or screen pop asks.

The world: Muster Maschinenbau GmbH with the switchboard "+49 89 4711-0" (every "+49 89 4711-…" is
theirs), Klaus Müller (0171 2345678) and Petra Weber (089 4711-33) who work there; our own block
"+49 89 1234567-0" with Jonas Becker on extension 22 and Sabine Schulz on 23.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_inbox.calls.service import close_stale_calls
from crm_inbox.db import unit_of_work
from crm_inbox.models import Call, Interaction, InteractionKind
from crm_inbox.staff.service import add_staff
from handlers.phone import placetel, twilio
from tests.conftest import make_settings, make_token
from tests.test_api import assert_error, create_company, create_contact

API = "/api/v1"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CTI = {"token": "cti-secret", "sipgate_token": "sg-secret", "placetel_token": "pt-secret",
       "placetel_secret": "pt-signing-key", "twilio_token": "tw-secret", "twilio_auth_token": "tw-auth-token",
       "threecx_token": "3cx-secret"}
PHONE = {"own_numbers": ("+49 89 1234567-0",)}
KLAUS = "+491712345678"
UNKNOWN = "+493023125000"  # Berlin, in the range reserved for fiction; nobody has it


@pytest.fixture
def settings(database_url, tmp_path):  # type: ignore[no-untyped-def]
    """Every phone system configured (overrides conftest's settings, so app and client use these)."""
    return make_settings(database_url, tmp_path / "instance", cti=CTI, phone=PHONE)


class Clock:
    """What the webhook routes think "now" is: sipgate, Placetel and Zammad events carry no time."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> datetime:
        self.now = T0 + timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock(monkeypatch):  # type: ignore[no-untyped-def]
    clock = Clock()
    monkeypatch.setattr("web.webhooks.utcnow", clock)
    return clock


@dataclass
class World:
    company: int
    klaus: int
    petra: int
    jonas: int
    sabine: int


@pytest.fixture
def world(client, auth, factory) -> World:  # type: ignore[no-untyped-def]
    company = create_company(client, auth, name="Muster Maschinenbau GmbH", phones=["+49 89 4711-0"])
    klaus = create_contact(client, auth, name="Klaus Müller", phones=["0171 2345678"], company_id=company["id"],
                           emails=["klaus.mueller@muster-maschinenbau.example"])
    petra = create_contact(client, auth, name="Petra Weber", phones=["089 4711-33"], company_id=company["id"])
    with unit_of_work(factory) as session:
        jonas = add_staff(session, "jonas.becker@beispiel-firma.de", "Jonas Becker", extension="22").id
        sabine = add_staff(session, "sabine.schulz@beispiel-firma.de", "Sabine Schulz", extension="23").id
    return World(company["id"], klaus["id"], petra["id"], jonas, sabine)


# --- helpers: posting as each system does, and reading what a user sees ---

def sipgate(client: Any, clock: Clock, at: float, token: str = "sg-secret", way: str = "in", **fields: Any) -> Any:
    clock.at(at)
    return client.post(f"{API}/sipgate/{token}/{way}", data=fields)


def cti(client: Any, clock: Clock, at: float, as_json: bool = False, token: str = "cti-secret", **fields: Any) -> Any:
    clock.at(at)
    if as_json:
        return client.post(f"{API}/cti/{token}", json=fields)
    return client.post(f"{API}/cti/{token}", data=fields)


def generic(client: Any, headers: dict[str, str], **event: Any) -> Any:
    return client.post(f"{API}/calls/events", json=event, headers=headers)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def calls(client: Any, auth: dict[str, str], **flags: str) -> list[dict[str, Any]]:
    response = client.get(f"{API}/calls", query_string=flags, headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(response.json["items"])


def only_call(client: Any, auth: dict[str, str]) -> dict[str, Any]:
    items = calls(client, auth)
    assert len(items) == 1, items
    return items[0]


def call_timeline(client: Any, auth: dict[str, str], contact_id: int) -> list[dict[str, Any]]:
    response = client.get(f"{API}/contacts/{contact_id}/timeline", query_string={"kind": "call"}, headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(response.json["items"])


def interaction(client: Any, auth: dict[str, str], interaction_id: int) -> dict[str, Any]:
    response = client.get(f"{API}/interactions/{interaction_id}", headers=auth)
    assert response.status_code == 200
    return dict(response.json)


def stored(factory: Any) -> tuple[int, int]:
    """(calls, call interactions) in the database."""
    with unit_of_work(factory) as session:
        return (session.execute(select(func.count()).select_from(Call)).scalar_one(),
                session.execute(select(func.count()).select_from(Interaction)
                                .where(Interaction.kind == InteractionKind.CALL)).scalar_one())


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [c["external_call_id"] for c in items]


def missed_in(client: Any, clock: Clock, call_id: str, number: str, cause: str, **extra: str) -> None:
    """A complete sipgate call that nobody answered."""
    base = {"callId": call_id, "direction": "in", "from": number, "to": "4989123456722"}
    assert sipgate(client, clock, 0, event="newCall", **base, **extra).status_code == 200
    assert sipgate(client, clock, 25, event="hangup", cause=cause, **base).status_code == 200


# --- sipgate and Zammad's CTI format ---

def test_sipgate_answered_inbound_call_reaches_the_timeline(client, auth, world, clock):
    base = {"callId": "sg-1", "direction": "in", "from": "491712345678", "to": "4989123456722"}
    first = sipgate(client, clock, 0, event="newCall", **{"user[]": ["Jonas Becker"]}, **base)
    assert first.status_code == 200 and first.mimetype == "application/xml"
    reply = ET.fromstring(first.data)
    url = "http://localhost/api/v1/sipgate/sg-secret/in"
    assert reply.tag == "Response" and reply.attrib == {"onAnswer": url, "onHangup": url}
    ringing = only_call(client, auth)
    assert ringing["state"] == "ringing" and ringing["number"] == KLAUS and ringing["contact_id"] == world.klaus

    answered = sipgate(client, clock, 12, event="answer", user="Jonas Becker", answeringNumber="4989123456722",
                       **base)
    assert ET.fromstring(answered.data).attrib["onHangup"] == url
    assert sipgate(client, clock, 87, event="hangup", cause="normalClearing", answeringNumber="4989123456722",
                   **base).status_code == 200

    call = only_call(client, auth)
    assert call["state"] == "ended" and call["answered"] and not call["missed"] and not call["callback_needed"]
    assert (call["direction"], call["from"], call["to"]) == ("in", "491712345678", "4989123456722")
    assert (call["ring_seconds"], call["talk_seconds"], call["cause"]) == (12, 75, "normalClearing")
    assert (call["contact_id"], call["company_id"], call["staff_id"]) == (world.klaus, world.company, world.jonas)
    assert call["staff_hint"] == "Jonas Becker" and call["source"] == "sipgate"

    [item] = call_timeline(client, auth, world.klaus)
    assert item["kind"] == "call" and item["direction"] == "in" and item["id"] == call["interaction_id"]
    assert item["subject"] == f"Incoming call {KLAUS}: answered, 1:15 min"
    assert item["occurred_at"].startswith("2026-11-23T09:00:00") and item["company_id"] == world.company
    assert item["source_ref"] == "sipgate:sg-1" and item["contact_ids"] == [world.klaus]
    detail = interaction(client, auth, item["id"])
    assert detail["staff_ids"] == [world.jonas] and detail["details"]["talk_seconds"] == 75
    assert detail["links"] == [{"contact_id": world.klaus, "role": "caller"}]
    assert calls(client, auth, missed="1") == [] and calls(client, auth, callback="1") == []


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_zammad_cti_answered_outbound_call(client, auth, world, clock, as_json):
    """Zammad's generic CTI format (sipgate's fields) at /api/v1/cti/<token>, form-encoded or JSON."""
    base = {"callId": "z-1", "direction": "out", "from": "4989123456723", "to": "0171 2345678"}
    for seconds, fields in ((0, {"event": "newCall", "user": "Sabine Schulz"}), (8, {"event": "answer"}),
                            (68, {"event": "hangup", "cause": "normalClearing"})):
        response = cti(client, clock, seconds, as_json=as_json, **fields, **base)
        assert response.status_code == 200 and response.json == {}
    call = only_call(client, auth)
    assert (call["source"], call["direction"], call["number"], call["staff_id"]) == ("cti", "out", KLAUS,
                                                                                      world.sabine)
    assert call["talk_seconds"] == 60 and not call["missed"]
    [item] = call_timeline(client, auth, world.klaus)
    assert item["direction"] == "out" and item["subject"] == f"Outgoing call {KLAUS}: answered, 1:00 min"


def test_zammad_cti_inbound_call_with_user_list(client, auth, world, clock):
    base = {"callId": "z-2", "direction": "in", "from": "491712345678", "to": "498912345670"}
    cti(client, clock, 0, event="newCall", **{"user[]": ["Jonas Becker"]}, **base)
    cti(client, clock, 5, event="answer", user="Jonas Becker", **base)
    cti(client, clock, 35, event="hangup", cause="normalClearing", **base)
    call = only_call(client, auth)
    assert call["staff_id"] == world.jonas and call["talk_seconds"] == 30 and call["contact_id"] == world.klaus


@pytest.mark.parametrize("cause", ["noAnswer", "busy", "cancel"])
def test_missed_call_with_each_cause_needs_a_call_back(client, auth, world, clock, cause):
    missed_in(client, clock, f"m-{cause}", "491712345678", cause)
    call = only_call(client, auth)
    assert call["missed"] and call["callback_needed"] and not call["answered"] and call["cause"] == cause
    assert call["talk_seconds"] is None and call["ring_seconds"] == 25
    assert ids(calls(client, auth, missed="1")) == ids(calls(client, auth, callback="1")) == [f"m-{cause}"]
    assert calls(client, auth, unassigned="1") == []
    [item] = call_timeline(client, auth, world.klaus)
    assert item["subject"] == f"Incoming call {KLAUS}: missed ({cause})"


def test_a_forwarded_call_is_not_missed(client, auth, world, clock):
    missed_in(client, clock, "fw-1", "491712345678", "forwarded", diversion="4989123456799")
    call = only_call(client, auth)
    assert not call["missed"] and not call["callback_needed"] and call["cause"] == "forwarded"
    assert call["diversion"] == "4989123456799"
    assert calls(client, auth, missed="1") == [] and calls(client, auth, callback="1") == []
    [item] = call_timeline(client, auth, world.klaus)
    assert item["subject"] == f"Incoming call {KLAUS}: forwarded"


@pytest.mark.parametrize("caller", ["anonymous", "", None], ids=["anonymous", "empty", "absent"])
def test_an_anonymous_caller_is_recorded_as_withheld_and_never_matched(client, auth, world, clock, caller):
    base: dict[str, Any] = {"callId": "anon-1", "direction": "in", "to": "4989123456722"}
    if caller is not None:
        base["from"] = caller
    assert sipgate(client, clock, 0, event="newCall", **base).status_code == 200
    assert sipgate(client, clock, 20, event="hangup", cause="cancel", **base).status_code == 200
    call = only_call(client, auth)
    assert call["withheld"] and call["number"] is None and call["missed"] and not call["callback_needed"]
    assert call["contact_id"] is None and call["company_id"] is None
    assert ids(calls(client, auth, missed="1")) == ["anon-1"] and calls(client, auth, callback="1") == []
    detail = interaction(client, auth, call["interaction_id"])
    assert detail["subject"] == "Incoming call withheld number: missed (cancel)" and detail["links"] == []
    assert call_timeline(client, auth, world.klaus) == []
    assert client.get(f"{API}/lookup", query_string={"number": "anonymous"}, headers=auth).status_code == 404


def test_an_unknown_callers_missed_call_waits_unassigned(client, auth, world, clock):
    missed_in(client, clock, "u-1", "493023125000", "noAnswer")
    [call] = calls(client, auth, unassigned="1")
    assert call["external_call_id"] == "u-1" and call["number"] == UNKNOWN
    assert call["contact_id"] is None and call["company_id"] is None and call["callback_needed"]
    assert ids(calls(client, auth, callback="1")) == ["u-1"]
    detail = interaction(client, auth, call["interaction_id"])
    assert detail["subject"] == f"Incoming call {UNKNOWN}: missed (noAnswer)"
    assert detail["attribution_reason"] == f"number {UNKNOWN} is unknown"
    lookup = client.get(f"{API}/lookup", query_string={"number": "030 23125 000"}, headers=auth)
    assert_error(lookup, 404)


def test_an_unknown_extension_of_a_companys_switchboard_is_the_company(client, auth, world, clock):
    missed_in(client, clock, "ext-1", "4989471199", "noAnswer")
    call = only_call(client, auth)
    assert call["number"] == "+4989471199" and call["contact_id"] is None and call["company_id"] == world.company
    assert calls(client, auth, unassigned="1") == [] and ids(calls(client, auth, callback="1")) == ["ext-1"]
    detail = interaction(client, auth, call["interaction_id"])
    assert detail["company_id"] == world.company and detail["links"] == []
    assert "switchboard" in detail["attribution_reason"]
    assert call_timeline(client, auth, world.klaus) == call_timeline(client, auth, world.petra) == []


def test_a_person_with_the_exact_extension_wins_over_the_block(client, auth, world, clock):
    missed_in(client, clock, "ext-2", "+49 89 4711-33", "busy")
    call = only_call(client, auth)
    assert (call["contact_id"], call["company_id"]) == (world.petra, world.company)
    [item] = call_timeline(client, auth, world.petra)
    assert item["company_id"] == world.company and item["subject"] == "Incoming call +4989471133: missed (busy)"


def test_the_same_events_twice_make_one_call(client, auth, world, clock, factory):
    base = {"callId": "dup-1", "direction": "in", "from": "491712345678", "to": "4989123456722"}
    sequence = [(0, {"event": "newCall"}), (10, {"event": "answer", "user": "Jonas Becker"}),
                (70, {"event": "hangup", "cause": "normalClearing"})]
    for seconds, fields in sequence:
        assert sipgate(client, clock, seconds, **fields, **base).status_code == 200
    before = only_call(client, auth)
    timeline_before = call_timeline(client, auth, world.klaus)
    for seconds, fields in sequence:  # redelivered later, as sipgate does after a timeout
        assert sipgate(client, clock, seconds + 300, **fields, **base).status_code == 200
    assert only_call(client, auth) == before
    assert call_timeline(client, auth, world.klaus) == timeline_before
    assert stored(factory) == (1, 1)
    assert before["talk_seconds"] == 60


def test_generic_events_repeated_change_nothing(client, auth, world, factory):
    event = {"event": "new", "call_id": "g-dup", "at": at(0), "direction": "in", "from": "0171 2345678",
             "to": "22"}
    first = generic(client, auth, **event)
    again = generic(client, auth, **event)
    assert first.status_code == again.status_code == 200 and first.json == again.json
    assert stored(factory) == (1, 1)


def test_answer_after_hangup_still_gives_an_answered_call(client, auth, world, clock):
    base = {"callId": "ooo-1", "direction": "in", "from": "491712345678", "to": "4989123456722"}
    sipgate(client, clock, 0, event="newCall", **base)
    sipgate(client, clock, 90, event="hangup", cause="normalClearing", **base)
    sipgate(client, clock, 91, event="answer", user="Jonas Becker", **base)  # delivered late
    call = only_call(client, auth)
    assert call["state"] == "ended" and call["answered"] and not call["missed"] and not call["callback_needed"]
    assert call["staff_id"] == world.jonas
    assert call["talk_seconds"] is not None and call["talk_seconds"] >= 0
    assert call["ring_seconds"] is not None and 0 <= call["ring_seconds"] <= 90
    [item] = call_timeline(client, auth, world.klaus)
    assert item["subject"].startswith(f"Incoming call {KLAUS}: answered, ") and "-" not in item["subject"]


def test_generic_answer_after_hangup_with_true_times(client, auth, world):
    common = {"call_id": "ooo-2", "from": "0171 2345678", "to": "22"}
    generic(client, auth, event="new", at=at(0), direction="in", **common)
    generic(client, auth, event="hangup", at=at(100), cause="normalClearing", **common)
    generic(client, auth, event="answer", at=at(20), **common)
    call = only_call(client, auth)
    assert (call["ring_seconds"], call["talk_seconds"], call["staff_id"]) == (20, 80, world.jonas)


def test_a_hangup_without_new_call_is_a_whole_call(client, auth, world, clock):
    base = {"callId": "ooo-3", "direction": "in", "from": "491712345678", "to": "4989123456722"}
    sipgate(client, clock, 30, event="hangup", cause="noAnswer", **base)
    call = only_call(client, auth)
    assert call["state"] == "ended" and call["missed"] and call["callback_needed"]
    assert call["contact_id"] == world.klaus and call["started_at"].startswith("2026-11-23T09:00:30")
    sipgate(client, clock, 0, event="newCall", **base)  # the lost newCall turns up
    call = only_call(client, auth)
    assert call["started_at"].startswith("2026-11-23T09:00:00") and call["ring_seconds"] == 30
    assert len(call_timeline(client, auth, world.klaus)) == 1


def test_a_call_back_clears_the_missed_call(client, auth, world, clock):
    missed_in(client, clock, "cb-1", "491712345678", "noAnswer")
    assert ids(calls(client, auth, callback="1")) == ["cb-1"]
    # an outgoing call that nobody takes is no call-back
    common = {"call_id": "cb-2", "from": "23", "to": "0171/2345678"}
    generic(client, auth, event="new", at=at(600), direction="out", **common)
    generic(client, auth, event="hangup", at=at(630), cause="noAnswer", **common)
    assert ids(calls(client, auth, callback="1")) == ["cb-1"]
    out = next(c for c in calls(client, auth) if c["external_call_id"] == "cb-2")
    assert not out["missed"] and out["staff_id"] == world.sabine
    # the one that is answered is
    common["call_id"] = "cb-3"
    generic(client, auth, event="new", at=at(900), direction="out", **common)
    generic(client, auth, event="answer", at=at(910), **common)
    assert ids(calls(client, auth, callback="1")) == ["cb-1"]  # still talking
    generic(client, auth, event="hangup", at=at(1000), cause="normalClearing", **common)
    assert calls(client, auth, callback="1") == []
    assert ids(calls(client, auth, missed="1")) == ["cb-1"]  # still a missed call, no longer owed
    subjects = [i["subject"] for i in call_timeline(client, auth, world.klaus)]
    assert subjects == [f"Outgoing call {KLAUS}: answered, 1:30 min", f"Outgoing call {KLAUS}: not reached (noAnswer)",
                        f"Incoming call {KLAUS}: missed (noAnswer)"]


def test_staff_from_sipgate_user_names_and_from_extensions(client, auth, world, clock):
    # two people rang: whoever answers tells
    base = {"callId": "st-1", "direction": "in", "from": "491712345678", "to": "498912345670"}
    sipgate(client, clock, 0, event="newCall", **{"user[]": ["Jonas Becker", "Sabine Schulz"]}, **base)
    assert only_call(client, auth)["staff_id"] is None
    sipgate(client, clock, 5, event="answer", user="sabine schulz", **base)
    call = only_call(client, auth)
    assert call["staff_id"] == world.sabine and call["staff_hint"] == "Jonas Becker, Sabine Schulz, sabine schulz"
    # the generic format's extension; an extension of our block in "to"
    generic(client, auth, event="new", call_id="st-2", at=at(0), direction="in", **{"from": "0171 2345678"},
            extension="22")
    generic(client, auth, event="new", call_id="st-3", at=at(0), direction="in", **{"from": "0171 2345678"},
            to="+49 89 1234567-23")
    by_id = {c["external_call_id"]: c for c in calls(client, auth)}
    assert by_id["st-2"]["staff_id"] == world.jonas and by_id["st-3"]["staff_id"] == world.sabine
    assert interaction(client, auth, by_id["st-3"]["interaction_id"])["staff_ids"] == [world.sabine]


# --- Twilio ---

TWILIO_URL = "http://localhost/api/v1/twilio/tw-secret"


def twilio_post(client: Any, fields: dict[str, str], signature: str | None = None, token: str = "tw-secret") -> Any:
    sig = signature if signature is not None else twilio.signature("tw-auth-token", TWILIO_URL, fields)
    return client.post(f"{API}/twilio/{token}", data=fields, headers={"X-Twilio-Signature": sig})


def twilio_fields(sid: str, status: str, seconds: float, **extra: str) -> dict[str, str]:
    when = (T0 + timedelta(seconds=seconds)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return {"AccountSid": "AC" + "0" * 32, "CallSid": sid, "CallStatus": status, "Direction": "inbound",
            "From": "+491712345678", "To": "+498912345670", "Timestamp": when, "ApiVersion": "2010-04-01",
            **extra}


def test_twilio_signed_status_callbacks(client, auth, world, factory):
    assert twilio_post(client, twilio_fields("CA1", "ringing", 0)).status_code == 204
    assert twilio_post(client, twilio_fields("CA1", "in-progress", 7)).status_code == 204
    assert twilio_post(client, twilio_fields("CA1", "completed", 67, CallDuration="60")).status_code == 204
    assert twilio_post(client, twilio_fields("CA1", "completed", 67, CallDuration="60")).status_code == 204
    call = only_call(client, auth)
    assert (call["source"], call["state"], call["talk_seconds"], call["ring_seconds"]) == ("twilio", "ended", 60, 7)
    assert call["contact_id"] == world.klaus and not call["missed"]
    [item] = call_timeline(client, auth, world.klaus)
    assert item["subject"] == f"Incoming call {KLAUS}: answered, 1:00 min"
    assert stored(factory) == (1, 1)


@pytest.mark.parametrize(("status", "cause"), [("no-answer", "noAnswer"), ("busy", "busy"), ("canceled", "cancel")])
def test_twilio_missed_calls(client, auth, world, status, cause):
    assert twilio_post(client, twilio_fields("CA2", status, 30)).status_code == 204
    call = only_call(client, auth)
    assert call["missed"] and call["callback_needed"] and call["cause"] == cause


def test_twilio_outbound_call(client, auth, world):
    fields = twilio_fields("CA3", "completed", 100, CallDuration="45", Direction="outbound-api",
                           From="+498912345670", To="+491712345678")
    assert twilio_post(client, fields).status_code == 204
    call = only_call(client, auth)
    assert call["direction"] == "out" and call["number"] == KLAUS and call["talk_seconds"] == 45


def test_twilio_timestamp_without_a_zone_is_utc(client, auth, world):
    fields = twilio_fields("CA5", "no-answer", 0, Timestamp="Mon, 23 Nov 2026 09:00:30 -0000")
    assert twilio_post(client, fields).status_code == 204
    call = only_call(client, auth)
    assert call["started_at"] == "2026-11-23T09:00:30+00:00" and call["missed"]


def test_twilio_wrong_signature_or_token_stores_nothing(client, auth, world, factory):
    fields = twilio_fields("CA4", "ringing", 0)
    assert_error(twilio_post(client, fields, signature="bm90IHRoZSBzaWduYXR1cmU="), 403)
    assert_error(twilio_post(client, fields, signature=""), 403)
    tampered = twilio.signature("tw-auth-token", TWILIO_URL, {**fields, "From": "+493023125000"})
    assert_error(twilio_post(client, fields, signature=tampered), 403)
    assert_error(twilio_post(client, fields, token="wrong"), 401)
    assert stored(factory) == (0, 0)


# --- Placetel ---

def placetel_post(client: Any, fields: dict[str, str], key: str | None = "pt-signing-key",
                  token: str = "pt-secret") -> Any:
    body = json.dumps(fields).encode()
    headers = {"X-PLACETEL-SIGNATURE": placetel.signature(key, body)} if key else {}
    return client.post(f"{API}/placetel/{token}", data=body, content_type="application/json", headers=headers)


def test_placetel_signed_notifications(client, auth, world, clock, factory):
    common = {"call_id": "pt-1", "from": "01712345678", "to": "0891234567022"}
    clock.at(0)
    assert placetel_post(client, {"event": "IncomingCall", **common}).status_code == 200
    clock.at(9)
    assert placetel_post(client, {"event": "CallAccepted", "peer": "22", **common}).status_code == 200
    clock.at(129)
    hungup = {"event": "HungUp", "type": "accepted", "duration": "120", **common}
    assert placetel_post(client, hungup).status_code == 200
    call = only_call(client, auth)
    assert (call["source"], call["talk_seconds"], call["ring_seconds"], call["staff_id"]) == ("placetel", 120, 9,
                                                                                              world.jonas)
    [item] = call_timeline(client, auth, world.klaus)
    assert item["subject"] == f"Incoming call {KLAUS}: answered, 2:00 min"
    assert stored(factory) == (1, 1)


def test_placetel_form_encoded_notifications(client, auth, world, clock):
    """Placetel posts form fields; the signature is over the raw body all the same."""
    def post(**fields: str) -> Any:
        body = urllib.parse.urlencode(fields).encode()
        return client.post(f"{API}/placetel/pt-secret", data=body, content_type="application/x-www-form-urlencoded",
                           headers={"X-PLACETEL-SIGNATURE": placetel.signature("pt-signing-key", body)})

    common = {"call_id": "pt-form", "from": "01712345678", "to": "0891234567023"}
    clock.at(0)
    assert post(event="IncomingCall", **common).status_code == 200
    clock.at(5)
    assert post(event="CallAccepted", peer="23", **common).status_code == 200
    clock.at(50)
    assert post(event="HungUp", type="accepted", duration="45", **common).status_code == 200
    call = only_call(client, auth)
    assert (call["talk_seconds"], call["staff_id"], call["contact_id"]) == (45, world.sabine, world.klaus)


def test_placetel_missed_call(client, auth, world, clock):
    common = {"call_id": "pt-2", "from": "01712345678", "to": "0891234567022"}
    placetel_post(client, {"event": "IncomingCall", **common})
    placetel_post(client, {"event": "HungUp", "type": "missed", **common})
    call = only_call(client, auth)
    assert call["missed"] and call["callback_needed"] and call["cause"] == "noAnswer"


def test_placetel_wrong_signature_or_token_stores_nothing(client, auth, world, factory):
    fields = {"event": "IncomingCall", "call_id": "pt-3", "from": "01712345678", "to": "0891234567022"}
    assert_error(placetel_post(client, fields, key="another-key"), 401)
    assert_error(placetel_post(client, fields, key=None), 401)
    assert_error(placetel_post(client, fields, token="wrong"), 401)
    assert stored(factory) == (0, 0)


def test_placetel_without_a_signing_secret(settings, factory, auth, world):
    from web import create_app

    app = create_app(make_settings(settings.database.url, settings.instance_path,
                                   cti={**CTI, "placetel_secret": ""}, phone=PHONE), factory)
    client = app.test_client()
    common = {"call_id": "pt-4", "from": "01712345678", "to": "0891234567022"}
    assert placetel_post(client, {"event": "IncomingCall", **common}, key=None).status_code == 200
    assert placetel_post(client, {"event": "HungUp", "type": "busy", **common}, key=None).status_code == 200
    assert placetel_post(client, {"event": "HungUp", "type": "busy", **common}, key=None).status_code == 200
    call = only_call(client, auth)
    assert call["missed"] and call["cause"] == "busy" and call["contact_id"] == world.klaus
    assert stored(factory) == (1, 1)


# --- 3CX ---

def journal(client: Any, token: str = "3cx-secret", **fields: str) -> Any:
    return client.post(f"{API}/3cx/{token}/journal", data=fields)


def test_3cx_journal_inbound_outbound_and_missed(client, auth, world, factory):
    inbound = {"Number": "+491712345678", "CallType": "Inbound", "CallDirection": "Inbound", "Agent": "22",
               "AgentFirstName": "Jonas", "AgentLastName": "Becker", "Duration": "00:02:05",
               "CallStartTimeUTC": "2026-11-23 09:00:00", "CallEndTimeUTC": "2026-11-23 09:02:15",
               "Name": "Klaus Müller"}
    first = journal(client, **inbound)
    assert first.status_code == 200 and isinstance(first.json["call_id"], int)
    assert journal(client, **inbound).json == first.json  # 3CX retries: the same call
    journal(client, Number="0171 2345678", CallType="Outbound", CallDirection="Outbound", Agent="23",
            Duration="00:00:40", CallStartTimeUTC="2026-11-23 10:00:00", CallEndTimeUTC="2026-11-23 10:00:50")
    journal(client, Number="030 23125000", CallType="Missed", CallDirection="Inbound", Agent="22",
            Duration="", CallStartTimeUTC="2026-11-23 11:00:00", CallEndTimeUTC="2026-11-23 11:00:30")
    assert stored(factory) == (3, 3)
    by_number = {(c["direction"], c["number"]): c for c in calls(client, auth)}
    answered_in = by_number[("in", KLAUS)]
    assert (answered_in["talk_seconds"], answered_in["ring_seconds"], answered_in["staff_id"]) == (125, 10,
                                                                                                   world.jonas)
    answered_out = by_number[("out", KLAUS)]
    assert (answered_out["talk_seconds"], answered_out["staff_id"]) == (40, world.sabine)
    missed = by_number[("in", UNKNOWN)]
    assert missed["missed"] and missed["callback_needed"] and missed["staff_id"] == world.jonas
    assert ids(calls(client, auth, unassigned="1")) == [missed["external_call_id"]]
    assert ids(calls(client, auth, callback="1")) == [missed["external_call_id"]]
    subjects = [i["subject"] for i in call_timeline(client, auth, world.klaus)]
    assert subjects == [f"Outgoing call {KLAUS}: answered, 0:40 min", f"Incoming call {KLAUS}: answered, 2:05 min"]


def test_3cx_lookup_answers_what_the_template_reads(client, auth, world):
    response = client.get(f"{API}/3cx/3cx-secret/lookup", query_string={"number": "+491712345678"})
    assert response.status_code == 200
    contact = response.json["contact"]
    assert contact == {"id": world.klaus, "first_name": "Klaus", "last_name": "Müller",
                       "company": "Muster Maschinenbau GmbH", "email": "klaus.mueller@muster-maschinenbau.example",
                       "phone": "0171 2345678", "url": f"http://localhost/contacts/{world.klaus}"}
    assert client.get(f"{API}/3cx/3cx-secret/lookup", query_string={"number": "03023125000"}).json == {
        "contact": None}
    assert_error(client.get(f"{API}/3cx/wrong/lookup", query_string={"number": "+491712345678"}), 401)


def test_3cx_template_needs_an_admin_and_points_at_us(client, auth, factory):
    staff = {"Authorization": f"Bearer {make_token(factory, 'staff@beispiel-firma.de', role='staff')}"}
    assert_error(client.get(f"{API}/3cx/template.xml"), 401)
    assert_error(client.get(f"{API}/3cx/template.xml", headers=staff), 403)
    response = client.get(f"{API}/3cx/template.xml", headers=auth)
    assert response.status_code == 200 and response.mimetype == "application/xml"
    assert "attachment" in response.headers["Content-Disposition"]
    root = ET.fromstring(response.data)
    urls = [r.attrib["Url"] for r in root.iter("Request")]
    assert urls == ["http://localhost/api/v1/3cx/3cx-secret/lookup?number=[Number]",
                    "http://localhost/api/v1/3cx/3cx-secret/journal"]
    paths = {v.attrib["Path"] for v in root.iter("Variable")}
    assert {"contact.id", "contact.first_name", "contact.last_name", "contact.company", "contact.url"} <= paths
    keys = {v.attrib["Key"] for v in root.iter("Value")}
    assert {"Number", "CallType", "Agent", "Duration", "CallStartTimeUTC", "CallEndTimeUTC"} <= keys


# --- the generic JSON format ---

def test_generic_format_with_staff_or_cti_token(client, auth, world, factory):
    cti_bearer = {"Authorization": "Bearer cti-secret"}
    common = {"call_id": "gen-1", "from": "0171 2345678", "to": "+49 89 1234567-22"}
    assert generic(client, auth, event="new", at=at(0), direction="in", **common).status_code == 200
    assert generic(client, cti_bearer, event="answer", at=at(3), user="Jonas Becker", **common).status_code == 200
    response = generic(client, {"X-CRM-Token": "cti-secret"}, event="hangup", at=at(63), cause="normalClearing",
                       duration=60, **common)
    assert response.status_code == 200
    call = only_call(client, auth)
    assert response.json == {"call_id": call["call_id"]}
    assert (call["source"], call["talk_seconds"], call["staff_id"]) == ("generic", 60, world.jonas)
    readonly = {"Authorization": f"Bearer {make_token(factory, 'ro@beispiel-firma.de', role='readonly')}"}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert_error(generic(client, headers, event="new", call_id="gen-2", at=at(0), direction="in"), 401)
    # A read-only user is known, and refused like everywhere else in the API.
    assert_error(generic(client, readonly, event="new", call_id="gen-2", at=at(0), direction="in"), 403)
    assert stored(factory) == (1, 1)


def test_generic_hangup_with_only_a_duration(client, auth, world):
    generic(client, auth, event="hangup", call_id="gen-3", at=at(200), direction="in", cause="normalClearing",
            duration=90, **{"from": "+491712345678"})
    call = only_call(client, auth)
    assert call["answered"] and call["talk_seconds"] == 90 and not call["missed"]


# --- tokens and malformed events ---

BAD_TOKEN_POSTS = [
    ("sipgate", "/sipgate/wrong/in", {"event": "newCall", "callId": "t-1", "direction": "in", "from": "01712345678"}),
    ("sipgate-out", "/sipgate/wrong/out", {"event": "newCall", "callId": "t-1", "direction": "out",
                                           "to": "01712345678"}),
    ("cti", "/cti/wrong", {"event": "newCall", "callId": "t-1", "direction": "in", "from": "01712345678"}),
    ("placetel", "/placetel/wrong", {"event": "IncomingCall", "call_id": "t-1", "from": "01712345678"}),
    ("twilio", "/twilio/wrong", {"CallSid": "t-1", "CallStatus": "ringing", "From": "+491712345678"}),
    ("3cx", "/3cx/wrong/journal", {"Number": "01712345678", "CallType": "Missed",
                                   "CallStartTimeUTC": "2026-11-23 09:00:00"}),
]


@pytest.mark.parametrize(("path", "fields"), [p[1:] for p in BAD_TOKEN_POSTS], ids=[p[0] for p in BAD_TOKEN_POSTS])
def test_a_wrong_token_gets_401_and_stores_nothing(client, world, factory, path, fields):
    assert_error(client.post(API + path, data=fields), 401)
    assert stored(factory) == (0, 0)


def test_the_right_token_of_another_system_is_refused(client, factory):
    assert_error(client.post(f"{API}/sipgate/cti-secret/in", data={"event": "newCall", "callId": "x",
                                                                   "direction": "in"}), 401)
    assert_error(client.post(f"{API}/cti/sg-secret", data={"event": "newCall", "callId": "x", "direction": "in"}),
                 401)
    assert stored(factory) == (0, 0)


def test_without_a_configured_token_every_webhook_is_refused(database_url, tmp_path, factory, auth):
    from web import create_app

    app = create_app(make_settings(database_url, tmp_path / "bare", phone=PHONE), factory)
    client = app.test_client()
    for path, fields in [(p[1], p[2]) for p in BAD_TOKEN_POSTS]:
        assert_error(client.post(API + path.replace("wrong", "anything"), data=fields), 403)
    assert_error(client.post(f"{API}/calls/events", json={"event": "new"},
                             headers={"Authorization": "Bearer anything"}), 403)
    assert_error(client.get(f"{API}/lookup", query_string={"number": "0171 2345678", "token": "x"}), 403)
    assert_error(client.get(f"{API}/3cx/template.xml", headers=auth), 409)
    assert stored(factory) == (0, 0)


MALFORMED = [
    ("missing-callId", "sipgate", {"event": "newCall", "direction": "in", "from": "01712345678"}, "callId"),
    ("bad-event", "sipgate", {"event": "ringing", "callId": "m-1", "direction": "in"}, "event"),
    ("missing-event", "sipgate", {"callId": "m-1", "direction": "in"}, "event"),
    ("bad-direction", "sipgate", {"event": "newCall", "callId": "m-1", "direction": "sideways"}, "direction"),
    ("no-direction", "sipgate", {"event": "newCall", "callId": "m-1"}, "direction"),
    ("bad-cause", "sipgate", {"event": "hangup", "callId": "m-1", "cause": "exploded"}, "cause"),
    ("cti-bad-cause", "cti", {"event": "hangup", "callId": "m-1", "cause": "exploded"}, "cause"),
    ("generic-missing-call_id", "generic", {"event": "new", "at": T0.isoformat(), "direction": "in"}, "call_id"),
    ("generic-bad-event", "generic", {"event": "ring", "call_id": "m-1", "at": T0.isoformat()}, "event"),
    ("generic-bad-direction", "generic", {"event": "new", "call_id": "m-1", "at": T0.isoformat(),
                                          "direction": "up"}, "direction"),
    ("generic-bad-cause", "generic", {"event": "hangup", "call_id": "m-1", "at": T0.isoformat(),
                                      "cause": "exploded"}, "cause"),
    ("generic-bad-at", "generic", {"event": "new", "call_id": "m-1", "at": "yesterday", "direction": "in"}, "at"),
    ("generic-missing-at", "generic", {"event": "new", "call_id": "m-1", "direction": "in"}, "at"),
    ("generic-bad-duration", "generic", {"event": "hangup", "call_id": "m-1", "at": T0.isoformat(),
                                         "duration": "long"}, "duration"),
    ("generic-object-as-from", "generic", {"event": "new", "call_id": "m-1", "at": T0.isoformat(),
                                           "direction": "in", "from": {"n": 1}}, "from"),
    ("twilio-bad-status", "twilio", {"CallSid": "m-1", "CallStatus": "exploded"}, "CallStatus"),
    ("placetel-bad-event", "placetel", {"event": "Exploded", "call_id": "m-1"}, "event"),
    ("3cx-bad-type", "3cx", {"Number": "0171", "CallType": "Sideways", "CallStartTimeUTC": "2026-11-23 09:00:00"},
     "CallType"),
    ("3cx-bad-start", "3cx", {"Number": "0171", "CallType": "Inbound", "CallStartTimeUTC": "soon"},
     "CallStartTimeUTC"),
]
ROUTES = {"sipgate": "/sipgate/sg-secret/in", "cti": "/cti/cti-secret", "generic": "/calls/events",
          "twilio": "/twilio/tw-secret", "placetel": "/placetel/pt-secret", "3cx": "/3cx/3cx-secret/journal"}


@pytest.mark.parametrize(("system", "fields", "field"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_events_get_400_naming_the_field(client, auth, factory, system, fields, field):
    headers = dict(auth)
    if system == "twilio":
        headers["X-Twilio-Signature"] = twilio.signature("tw-auth-token", TWILIO_URL, fields)
    if system in {"generic", "placetel"}:
        body = json.dumps(fields).encode()
        if system == "placetel":
            headers["X-PLACETEL-SIGNATURE"] = placetel.signature("pt-signing-key", body)
        response = client.post(API + ROUTES[system], data=body, content_type="application/json", headers=headers)
    else:
        response = client.post(API + ROUTES[system], data=fields, headers=headers)
    error = assert_error(response, 400, field)
    assert error["code"] == "invalid"
    assert stored(factory) == (0, 0)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"new"', b""], ids=["broken", "array", "string", "empty"])
@pytest.mark.parametrize("route", ["generic", "cti"])
def test_a_body_that_is_no_json_object_gets_400(client, auth, factory, body, route):
    response = client.post(API + ROUTES[route], data=body, content_type="application/json", headers=auth)
    assert_error(response, 400, "body")
    assert stored(factory) == (0, 0)


# --- calls whose hangup never comes ---

def test_a_call_without_hangup_is_closed_after_max_call_minutes(client, auth, world, clock, factory, settings):
    base = {"callId": "stale-1", "direction": "in", "from": "491712345678", "to": "4989123456722"}
    sipgate(client, clock, 0, event="newCall", **base)
    sipgate(client, clock, 4, event="answer", user="Jonas Becker", **base)
    ringing = {"callId": "stale-2", "direction": "in", "from": "493023125000", "to": "4989123456722"}
    sipgate(client, clock, 60, event="newCall", **ringing)
    with unit_of_work(factory) as session:  # not yet: 239 minutes
        assert close_stale_calls(session, settings, now=T0 + timedelta(minutes=239)) == 0
    now = T0 + timedelta(minutes=241, seconds=30)
    with unit_of_work(factory) as session:
        assert close_stale_calls(session, settings, now=now) == 2
    with unit_of_work(factory) as session:
        assert close_stale_calls(session, settings, now=now + timedelta(hours=1)) == 0
    by_id = {c["external_call_id"]: c for c in calls(client, auth)}
    answered, unanswered = by_id["stale-1"], by_id["stale-2"]
    assert answered["closed_by_timeout"] and answered["state"] == "ended" and answered["cause"] == "timeout"
    assert answered["talk_seconds"] == 241 * 60 + 30 - 4 and not answered["missed"]
    assert unanswered["closed_by_timeout"] and unanswered["state"] == "ended" and not unanswered["callback_needed"]
    [item] = call_timeline(client, auth, world.klaus)
    assert item["subject"] == f"Incoming call {KLAUS}: answered, 241:26 min, closed without hangup event"
    # the real hangup, arriving after all, changes nothing
    sipgate(client, clock, 300, event="hangup", cause="normalClearing", **base)
    assert {c["external_call_id"]: c for c in calls(client, auth)}["stale-1"] == answered


# --- the caller lookup ---

def test_lookup_in_json_and_text(client, auth, world, clock):
    missed_in(client, clock, "lk-1", "491712345678", "noAnswer")
    response = client.get(f"{API}/lookup", query_string={"number": "0171/2345678"}, headers=auth)
    assert response.status_code == 200
    body = response.json
    assert body["display_name"] == "Klaus Müller (Muster Maschinenbau GmbH)"
    assert body["contact"]["id"] == world.klaus and body["contact"]["url"] == f"/contacts/{world.klaus}"
    assert body["company"]["id"] == world.company and body["company"]["name"] == "Muster Maschinenbau GmbH"
    assert body["last_interaction"]["kind"] == "call"
    assert body["last_interaction"]["subject"] == f"Incoming call {KLAUS}: missed (noAnswer)"
    for typed in ("+49 171 2345678", "0049 171 2345678", "491712345678", "+49 (0)171 2345678"):
        text = client.get(f"{API}/lookup", query_string={"number": typed, "format": "text", "token": "cti-secret"})
        assert text.status_code == 200 and text.mimetype == "text/plain"
        assert text.get_data(as_text=True) == "Klaus Müller (Muster Maschinenbau GmbH)"


def test_lookup_of_a_switchboard_extension_names_the_company(client, auth, world):
    body = client.get(f"{API}/lookup", query_string={"number": "089 4711-99"}, headers=auth).json
    assert body["display_name"] == "Muster Maschinenbau GmbH" and body["contact"] is None
    assert body["company"]["id"] == world.company
    text = client.get(f"{API}/lookup", query_string={"number": "089 4711-33", "format": "text"}, headers=auth)
    assert text.get_data(as_text=True) == "Petra Weber (Muster Maschinenbau GmbH)"


def test_lookup_of_unknown_withheld_and_bad_requests(client, auth, world):
    for number in ("030 23125000", "anonymous", "12"):
        assert_error(client.get(f"{API}/lookup", query_string={"number": number}, headers=auth), 404)
        text = client.get(f"{API}/lookup", query_string={"number": number, "format": "text"}, headers=auth)
        assert text.status_code == 404 and text.get_data(as_text=True) == ""
    assert_error(client.get(f"{API}/lookup", headers=auth), 400, "number")
    assert_error(client.get(f"{API}/lookup", query_string={"number": "0171 2345678"}), 401)
    assert_error(client.get(f"{API}/lookup", query_string={"number": "0171 2345678", "token": "wrong"}), 401)
    assert client.get(f"{API}/lookup", query_string={"number": "0171 2345678"},
                      headers={"X-CRM-Token": "cti-secret"}).status_code == 200
    assert_error(client.get(f"{API}/calls"), 401)


# --- PostgreSQL: the same newCall twice at the same moment ---

def test_the_same_new_call_posted_twice_at_once_is_one_call(app, auth, world, factory, pg_url):
    if not pg_url:
        pytest.skip("SQLite serialises writers, so there is no race to test; run with CRM_INBOX_TEST_DATABASE_URL")
    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def post(index: int) -> None:
        client = app.test_client()
        try:
            for round_ in range(10):
                barrier.wait(timeout=10)
                response = client.post(f"{API}/sipgate/sg-secret/in", data={
                    "event": "newCall", "callId": f"race-{round_}", "direction": "in", "from": "491712345678",
                    "to": "4989123456722"})
                results.append(response.status_code)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and results == [200] * 20
    assert stored(factory) == (10, 10)
    assert len(call_timeline(app.test_client(), auth, world.klaus)) == 10


def test_3cx_lookup_of_a_company_extension_names_the_company(client, auth, world):
    contact = client.get(f"{API}/3cx/3cx-secret/lookup", query_string={"number": "089 4711 55"}).json["contact"]
    assert contact["id"] == f"company-{world.company}"
    assert contact["company"] == "Muster Maschinenbau GmbH"
    assert contact["url"] == f"http://localhost/companies/{world.company}"


def test_lookup_counts_the_callers_open_tickets(client, auth, world, factory, settings):
    from crm_inbox.contacts.directory import ContactRef
    from crm_inbox.tickets import service as tickets

    with factory() as session:
        for subject in ("Angebot", "Reklamation"):
            tickets.open_ticket(session, settings, subject=subject, contact=ContactRef(world.klaus, None, None, None),
                                interaction=None, opened_by=None)
        session.commit()
    assert client.get(f"{API}/lookup", query_string={"number": "0171/2345678"}, headers=auth).json[
        "open_tickets"] == 2


def test_a_late_event_does_not_bring_back_a_call_back_that_happened(client, auth, world, clock):
    # the hangup of a missed call arrives first (its newCall got lost on the way) …
    sipgate(client, clock, 20, event="hangup", callId="m1", cause="noAnswer", direction="in",
            **{"from": "4930231250001"}, to="49891234567")
    assert [c["external_call_id"] for c in calls(client, auth, callback="1")] == ["m1"]
    # … staff call back …
    sipgate(client, clock, 60, way="out", event="newCall", direction="out", callId="back",
            **{"from": "49891234567"}, to="4930231250001")
    sipgate(client, clock, 65, way="out", event="answer", callId="back")
    sipgate(client, clock, 120, way="out", event="hangup", callId="back", cause="normalClearing")
    assert calls(client, auth, callback="1") == []
    # … and then the lost newCall turns up: the call-back has happened, nothing is owed again
    sipgate(client, clock, 130, event="newCall", callId="m1", direction="in", **{"from": "4930231250001"},
            to="49891234567")
    assert calls(client, auth, callback="1") == []


def test_serve_closes_calls_whose_hangup_never_came(settings, factory):
    from datetime import UTC, datetime

    from crm_inbox.calls.service import CallEvent, apply_event
    from crm_inbox.models import Call, Direction
    from crm_inbox.runtime import Service

    with factory() as session:
        started = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        apply_event(session, settings, CallEvent("generic", "lost-hangup", "new", started, direction=Direction.IN,
                                                 from_number="+493023125000", to_number="22"))
        session.commit()
    service = Service(settings, web=False, smtp=False)
    service.start()
    try:
        # The scheduler's first round, right at start, closes it.
        assert service.scheduler.wait_runs("close-stale-calls")
    finally:
        service.stop()
    with factory() as session:
        call = session.query(Call).one()
        assert call.state.value == "ended" and call.closed_by_timeout and call.cause == "timeout"


def test_a_call_event_reads_the_staff_and_the_callers_match_in_one_statement(settings, factory, world):
    """Before the call is claimed, SQLite reads the staff directory and the number's matches in one statement;
    PostgreSQL reads them with the claim itself (nothing before it)."""
    from sqlalchemy import event as sa_event

    from crm_inbox.calls.matching import read_matches
    from crm_inbox.calls.service import CallEvent, prepare
    from crm_inbox.models import Direction

    engine = factory.kw["bind"]
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    call = CallEvent("sipgate", "one-read", "new", T0, direction=Direction.IN, from_number="491712345678",
                     to_number="49891234567", users=("Jonas Becker",))
    with factory() as session:
        session.connection()  # checked out before counting
        sa_event.listen(engine, "before_cursor_execute", count)
        try:
            prepared = prepare(session, settings, call)
        finally:
            sa_event.remove(engine, "before_cursor_execute", count)
    if engine.dialect.name == "postgresql":
        assert prepared is None and statements == []
        return
    assert prepared is not None and len(statements) == 1
    assert prepared.staff.extensions == {"22": world.jonas, "23": world.sabine}
    assert prepared.staff.by_names(("Jonas Becker",)) == world.jonas
    assert prepared.number == KLAUS
    match = read_matches(KLAUS, prepared.matches)
    assert (match.contact_id, match.company_id, match.contact_name) == (world.klaus, world.company, "Klaus Müller")
