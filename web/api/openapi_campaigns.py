"""The campaigns' part of the OpenAPI document: campaigns, their preview, test mail, start / approve / pause /
resume / cancel, figures, responders, and the mail-merge letters and data.

Added to ``openapi.PATHS`` and ``openapi.SCHEMAS`` when the API package imports this module, as
openapi_sales.py is."""

from __future__ import annotations

from typing import Any

from crm_inbox.models import CampaignState
from web.api.openapi import ERRORS, FORBIDDEN, ID, NOT_FOUND, PATHS, SCHEMAS, _error, _json, _q, _ref

_str_or_null = {"type": ["string", "null"]}
_int_or_null = {"type": ["integer", "null"], "minimum": 1}
_time_or_null = {"type": ["string", "null"], "format": "date-time"}
_time = {"type": "string", "format": "date-time"}
_count = {"type": "integer", "minimum": 0}
_channel = {"type": "string", "enum": ["email", "letter"]}
_state = {"type": "string", "enum": [s.value for s in CampaignState],
          "description": "draft; awaiting_approval (more recipients than [campaigns] approval_threshold: an admin "
                         "approves); sending; paused; done; cancelled"}
_reasons = {"type": "object", "additionalProperties": _count,
            "description": "who was left out, by reason: opted_out, bouncing, erased, no_consent, pending, "
                           "no_notice, no_purchase, no_address, no_postal_address, …"}
_body = lambda schema: {"required": True, "content": {"application/json": {"schema": schema}}}  # noqa: E731
_conflict = {"409": _error("Not possible in the campaign's state (e.g. changing one that was started)")}
_fields: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200}, "segment_id": {"type": "integer", "minimum": 1},
    "channel": _channel, "sender_name": _str_or_null,
    "subject": {"type": "string", "description": "a template: {{ greeting }}, {{ company }}, {{ fields.x }} …"},
    "body": {"type": "string", "description": "plain text template; the HTML part is made from it"}}

SCHEMAS.update({
    "Campaign": {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "segment_id": _int_or_null, "channel": _channel,
        "state": _state, "sender_name": _str_or_null, "subject": {"type": "string"}, "body": {"type": "string"},
        "recipient_count": _count, "left_out": _reasons, "created_by_id": _int_or_null,
        "approved_by_id": _int_or_null, "approved_at": _time_or_null, "started_at": _time_or_null,
        "finished_at": _time_or_null, "created_at": _time, "updated_at": _time,
        "actions": {"type": "array", "items": {"type": "string", "enum": [
            "edit", "delete", "start", "approve", "pause", "resume", "cancel", "test", "print"]},
            "description": "what the campaign's state allows now (who may do it is checked apart)"},
        "url": {"type": "string"}}},
    "CampaignInput": {"type": "object", "additionalProperties": False, "required": ["name", "segment_id", "channel"],
                      "properties": _fields},
    "CampaignChanges": {"type": "object", "additionalProperties": False, "properties": _fields,
                        "description": "a draft only"},
    "RenderedMail": {"type": "object", "properties": {
        "subject": {"type": "string"}, "text": {"type": "string"},
        "html": {"type": "string", "description": "made from the text; no tracking, no rewritten links"}}},
    "CampaignSummary": {"type": "object", "properties": {
        **{name: _count for name in ("recipients", "queued", "released", "sent", "failed", "uncertain", "bounced",
                                     "replied", "opted_out", "opportunities", "printed")},
        "left_out": _reasons,
        "uncertain_recipients": {"type": "array", "description": "whose mail may have gone out twice",
                                 "items": {"type": "object", "properties": {
                                     "contact_id": _int_or_null, "address": _str_or_null}}}}},
    "CampaignResponder": {"type": "object", "properties": {
        "recipient_id": {"type": "integer"}, "contact_id": _int_or_null, "contact_name": _str_or_null,
        "replied_at": _time_or_null, "reply_interaction_id": _int_or_null, "reply_subject": _str_or_null,
        "reply_excerpt": _str_or_null, "opportunity_id": _int_or_null, "asks_to_unsubscribe": {"type": "boolean"}}},
})


def _act(summary: str, op: str, *, forbidden: str | None = None) -> dict[str, Any]:
    extra = {"403": _error(forbidden)} if forbidden else FORBIDDEN
    return {"parameters": [ID], "post": {
        "summary": summary, "operationId": op,
        "responses": {"200": _json(_ref("Campaign")), **ERRORS, **extra, **NOT_FOUND, **_conflict}}}


PATHS.update({
    "/campaigns": {
        "get": {"summary": "Campaigns, newest first", "operationId": "listCampaigns",
                "parameters": [_q("state", _state)],
                "responses": {"200": _json({"type": "object", "properties": {
                    "items": {"type": "array", "items": _ref("Campaign")}}}), **ERRORS}},
        "post": {"summary": "Create a campaign (a draft)", "operationId": "createCampaign",
                 "requestBody": _body(_ref("CampaignInput")),
                 "responses": {"201": _json(_ref("Campaign"), "Created"), **ERRORS, **FORBIDDEN,
                               "409": _error("The name is taken")}}},
    "/campaigns/{id}": {
        "parameters": [ID],
        "get": {"summary": "One campaign", "operationId": "getCampaign",
                "responses": {"200": _json(_ref("Campaign")), **ERRORS, **NOT_FOUND}},
        "patch": {"summary": "Change a draft campaign", "operationId": "patchCampaign",
                  "requestBody": _body(_ref("CampaignChanges")),
                  "responses": {"200": _json(_ref("Campaign")), **ERRORS, **FORBIDDEN, **NOT_FOUND, **_conflict}},
        "delete": {"summary": "Delete a draft or cancelled campaign", "operationId": "deleteCampaign",
                   "responses": {"204": {"description": "Deleted"}, **ERRORS, **FORBIDDEN, **NOT_FOUND,
                                 **_conflict}}},
    "/campaigns/{id}/preview": {
        "parameters": [ID],
        "post": {"summary": "The mail as one recipient gets it (without contact_id: the first recipient)",
                 "operationId": "previewCampaign",
                 "requestBody": {"required": False, "content": {"application/json": {"schema": {
                     "type": "object", "additionalProperties": False,
                     "properties": {"contact_id": _int_or_null}}}}},
                 "responses": {"200": _json(_ref("RenderedMail")), **ERRORS, **NOT_FOUND, **_conflict}}},
    "/campaigns/{id}/test": {
        "parameters": [ID],
        "post": {"summary": "A test mail to the caller's own address (subject marked [Test]; on no timeline)",
                 "operationId": "testCampaign",
                 "responses": {"200": _json({"type": "object", "properties": {
                     "to": {"type": "string"}, "subject": {"type": "string"}, "message_id": {"type": "string"}}}),
                     **ERRORS, **FORBIDDEN, **NOT_FOUND, **_conflict}}},
    "/campaigns/{id}/start": _act("Start: write the send ledger and send at [campaigns] per_minute (above the "
                                  "approval threshold: awaiting_approval)", "startCampaign"),
    "/campaigns/{id}/approve": _act("Approve a campaign awaiting approval (admins only)", "approveCampaign",
                                    forbidden="Only an admin approves"),
    "/campaigns/{id}/pause": _act("Pause sending", "pauseCampaign"),
    "/campaigns/{id}/resume": _act("Resume sending", "resumeCampaign"),
    "/campaigns/{id}/cancel": _act("Cancel: what was not sent yet never will be", "cancelCampaign"),
    "/campaigns/{id}/summary": {
        "parameters": [ID],
        "get": {"summary": "The figures: sent, failed, uncertain, bounced, replied, opted out, opportunities",
                "operationId": "campaignSummary",
                "responses": {"200": _json(_ref("CampaignSummary")), **ERRORS, **NOT_FOUND}}},
    "/campaigns/{id}/responders": {
        "parameters": [ID],
        "get": {"summary": "Who replied, newest first", "operationId": "campaignResponders",
                "parameters": [_q("page", {"type": "integer", "minimum": 1}),
                               _q("size", {"type": "integer", "minimum": 1, "maximum": 200})],
                "responses": {"200": _json({"type": "object", "properties": {
                    "items": {"type": "array", "items": _ref("CampaignResponder")}, "more": {"type": "boolean"},
                    "page": {"type": "integer"}}}), **ERRORS, **NOT_FOUND}}},
    "/campaigns/{id}/qualify": {
        "parameters": [ID],
        "post": {"summary": "Make an opportunity of a responder's reply", "operationId": "qualifyResponder",
                 "requestBody": _body({"type": "object", "additionalProperties": False, "required": ["recipient_id"],
                                       "properties": {"recipient_id": {"type": "integer", "minimum": 1}}}),
                 "responses": {"201": _json({"type": "object", "properties": {
                     "opportunity_id": {"type": "integer"}, "title": {"type": "string"},
                     "url": {"type": "string"}}}, "Created"),
                     **ERRORS, **FORBIDDEN, **NOT_FOUND,
                     "409": _error("The reply has an opportunity already, or there is no reply")}}},
    "/campaigns/{id}/letters.pdf": {
        "parameters": [ID],
        "post": {"summary": "The mail-merge PDF: one DIN 5008 letter per recipient (the first print records "
                           "each letter on its timeline)", "operationId": "campaignLetters",
                "responses": {"200": {"description": "The PDF, always as a download",
                                      "content": {"application/pdf": {}}},
                              **ERRORS, **FORBIDDEN, **NOT_FOUND, **_conflict}}},
    "/campaigns/{id}/merge": {
        "parameters": [ID],
        "get": {"summary": "The recipients' data for a word processor's mail merge", "operationId": "campaignMerge",
                "description": "Letters printed from this data are not recorded (no timeline entry, the campaign "
                               "does not end); only letters.pdf records who got a letter. Not for read-only users.",
                "parameters": [_q("format", {"type": "string", "enum": ["csv", "xlsx"]})],
                "responses": {"200": {"description": "CSV or XLSX, as a download", "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}},
                    **ERRORS, **FORBIDDEN, **NOT_FOUND, **_conflict}}},
})
