"""Every phone webhook with arbitrary JSON and form payloads (hypothesis): 2xx or 4xx, never 500, and a 4xx
stores nothing. Replayed, tampered and wrongly signed requests store nothing either."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from crm_inbox.models import Call, Contact, Interaction
from handlers.phone import placetel, twilio
from tests.conftest import make_settings

API = "/api/v1"
TOKENS = {"token": "cti-secret", "sipgate_token": "sg-secret", "placetel_token": "pt-secret",
          "twilio_token": "tw-secret", "threecx_token": "3cx-secret"}
ROUTES = [f"{API}/cti/cti-secret", f"{API}/sipgate/sg-secret/in", f"{API}/sipgate/sg-secret/out",
          f"{API}/placetel/pt-secret", f"{API}/twilio/tw-secret", f"{API}/3cx/3cx-secret/journal",
          f"{API}/calls/events"]
# The fields the adapters read, so generated payloads often get past the first check.
FIELDS = ["event", "direction", "from", "to", "callId", "user", "user[]", "cause", "answeringNumber", "diversion",
          "origCallId", "type", "peer", "call_id", "at", "duration", "from_number", "to_number", "extension",
          "CallSid", "CallStatus", "Direction", "From", "To", "Caller", "Called", "Timestamp", "CallDuration",
          "Number", "CallType", "CallDirection", "Duration", "CallStartTimeUTC", "CallEndTimeUTC", "Agent", "Name",
          "Email", "Missed", "source", "kind"]
VALUES = ["newCall", "answer", "hangup", "in", "out", "inbound", "outbound", "completed", "busy", "no-answer",
          "+491712345678", "0171 2345678", "anonymous", "", "2026-11-23T10:15:00+01:00", "Mon, 23 Nov 2026 10:00:00",
          "99999999999999999999", "-1", "1e309", "NaN", "\x00", "<script>alert(1)</script>", "x" * 300]

_scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=False), st.sampled_from(VALUES), st.text(max_size=40))
_json = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                    st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                     max_leaves=12)
json_payload = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=12)), _json, max_size=10), _json)
form_payload = st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=12)),
                               st.one_of(st.sampled_from(VALUES), st.text(max_size=40),
                                         st.lists(st.sampled_from(VALUES), max_size=3)), max_size=10)


@pytest.fixture
def settings(database_url, tmp_path):  # type: ignore[no-untyped-def]
    """Tokens for every system, no signing keys: the payloads, not the signatures, are fuzzed here."""
    return make_settings(database_url, tmp_path / "instance", cti=TOKENS)


def stored(factory: Any) -> tuple[int, int, int]:
    with factory() as session:
        return tuple(session.execute(select(func.count()).select_from(m)).scalar_one()  # type: ignore[return-value]
                     for m in (Call, Interaction, Contact))


def check(client: Any, factory: Any, route: str, **request: Any) -> int:
    before = stored(factory)
    response = client.post(route, **request)
    assert response.status_code < 500, (route, request, response.get_data(as_text=True)[:500])
    if response.status_code >= 400:
        assert stored(factory) == before, f"{route} answered {response.status_code} but stored something"
    return response.status_code


@fuzz_settings(max_examples=fuzz_settings.default.max_examples * 2)
@given(route=st.sampled_from(ROUTES), payload=json_payload)
def test_any_json_payload_is_answered_2xx_or_4xx(client, factory, auth, route, payload):
    check(client, factory, route, data=json.dumps(payload), content_type="application/json",
          headers={**auth, "X-CRM-Token": "cti-secret"} if route.endswith("/calls/events") else {})


@fuzz_settings(max_examples=fuzz_settings.default.max_examples * 2)
@given(route=st.sampled_from(ROUTES), payload=form_payload)
def test_any_form_payload_is_answered_2xx_or_4xx(client, factory, auth, route, payload):
    check(client, factory, route, data=payload, headers=auth if route.endswith("/calls/events") else {})


@given(route=st.sampled_from(ROUTES), body=st.binary(max_size=300),
       content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain",
                                     "multipart/form-data; boundary=x", "application/json; charset=latin-1"]))
def test_any_raw_body_is_answered_2xx_or_4xx(client, factory, auth, route, body, content_type):
    check(client, factory, route, data=body, content_type=content_type,
          headers=auth if route.endswith("/calls/events") else {})


# --- signatures: replayed, tampered, wrongly signed ------------------------------------------------------

SIGNED = {**TOKENS, "twilio_auth_token": "tw-auth-token", "placetel_secret": "pt-signing-key"}
TWILIO_URL = "http://localhost/api/v1/twilio/tw-secret"
CALL = {"CallSid": "CA-replay-1", "CallStatus": "no-answer", "Direction": "inbound", "From": "+491712345678",
        "To": "+49891234567"}


@pytest.fixture
def signed_client(database_url, tmp_path, factory):  # type: ignore[no-untyped-def]
    from web import create_app

    app = create_app(make_settings(database_url, tmp_path / "signed", cti=SIGNED), factory)
    app.config["TESTING"] = True
    return app.test_client()


def test_twilio_replay_with_a_changed_body_is_refused_and_the_same_request_twice_is_one_call(signed_client, factory):
    signature = twilio.signature("tw-auth-token", TWILIO_URL, CALL)
    headers = {"X-Twilio-Signature": signature}
    assert signed_client.post(f"{API}/twilio/tw-secret", data=CALL, headers=headers).status_code == 204
    after_first = stored(factory)
    assert after_first[0] == 1
    # The same signed request again (a retry or a replay): idempotent, still one call.
    assert signed_client.post(f"{API}/twilio/tw-secret", data=CALL, headers=headers).status_code == 204
    assert stored(factory) == after_first
    # The captured signature with another body (a new call, another caller, a field added): refused.
    for changed in ({**CALL, "CallSid": "CA-replay-2"}, {**CALL, "From": "+493023125000"},
                    {**CALL, "CallStatus": "completed", "CallDuration": "60"}, {k: v for k, v in CALL.items()
                                                                                 if k != "To"}):
        assert signed_client.post(f"{API}/twilio/tw-secret", data=changed, headers=headers).status_code == 403
    assert stored(factory) == after_first
    # Signed for another URL (another installation's token in the path): refused.
    other = twilio.signature("tw-auth-token", "http://localhost/api/v1/twilio/other", CALL)
    assert signed_client.post(f"{API}/twilio/tw-secret", data={**CALL, "CallSid": "CA-3"},
                              headers={"X-Twilio-Signature": other}).status_code == 403
    assert stored(factory) == after_first


def test_placetel_replay_with_a_changed_body_is_refused(signed_client, factory):
    body = json.dumps({"event": "IncomingCall", "from": "+491712345678", "to": "+49891234567",
                       "call_id": "pt-replay-1"}).encode()
    headers = {"X-PLACETEL-SIGNATURE": placetel.signature("pt-signing-key", body)}
    route = f"{API}/placetel/pt-secret"
    assert signed_client.post(route, data=body, content_type="application/json", headers=headers).status_code == 200
    after_first = stored(factory)
    assert after_first[0] == 1
    assert signed_client.post(route, data=body, content_type="application/json", headers=headers).status_code == 200
    assert stored(factory) == after_first
    for changed in (body.replace(b"pt-replay-1", b"pt-replay-2"), body + b" ", body.replace(b"+4917", b"+4930")):
        response = signed_client.post(route, data=changed, content_type="application/json", headers=headers)
        assert response.status_code == 401
    assert stored(factory) == after_first


@fuzz_settings(max_examples=fuzz_settings.default.max_examples)
@given(route=st.sampled_from([f"{API}/twilio/tw-secret", f"{API}/placetel/pt-secret"]), payload=form_payload,
       signature=st.one_of(st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60),
                           st.binary(max_size=40).map(lambda b: b.hex())))
def test_wrongly_signed_requests_store_nothing(signed_client, factory, route, payload, signature):
    header = "X-Twilio-Signature" if "twilio" in route else "X-PLACETEL-SIGNATURE"
    status = check(signed_client, factory, route, data=payload, headers={header: signature})
    assert status in {400, 401, 403}  # 400: input no phone system sends (a NUL character), refused first
