"""3CX "CRM Integration" template: its lookup scenario asks who is calling, its ReportCall scenario
journals a finished call. 3CX sends no call id, so one is derived from the numbers and the start time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import quoteattr

from crm_inbox.calls.service import CallEvent
from crm_inbox.errors import CallEventError
from crm_inbox.models import Direction
from handlers.phone._fields import in_utc, one

CALL_TYPES = {"Inbound": Direction.IN, "Outbound": Direction.OUT, "Missed": Direction.IN,
              "Notanswered": Direction.OUT}


def _duration(value: str | None) -> int:
    if not value:
        return 0
    parts = value.split(":")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise CallEventError("Duration", "must be hh:mm:ss")
    total = 0
    for part in parts:
        total = total * 60 + int(part)
    if total > 7 * 24 * 3600:  # no call lasts a week; a huge one overflows the time arithmetic
        raise CallEventError("Duration", "must be at most 7 days")
    return total


def parse_report(data: Mapping[str, Any], now: datetime) -> list[CallEvent]:
    number = one(data, "Number", required=True)
    call_type = one(data, "CallType", required=True)
    if call_type not in CALL_TYPES:
        raise CallEventError("CallType", "must be Inbound, Outbound, Missed or Notanswered")
    start_text = one(data, "CallStartTimeUTC", required=True) or ""
    try:
        start = datetime.strptime(start_text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        try:
            start = datetime.fromisoformat(start_text.replace("Z", "+00:00"))
        except ValueError:
            raise CallEventError("CallStartTimeUTC", "must be yyyy-MM-dd HH:mm:ss (UTC)") from None
    start = in_utc("CallStartTimeUTC", start)
    talk = _duration(one(data, "Duration"))
    agent = one(data, "Agent")
    direction = CALL_TYPES[call_type]
    call_id = hashlib.sha256(f"{number}|{agent}|{start.isoformat()}".encode()).hexdigest()[:40]
    ours, theirs = agent, number  # the agent's extension is our side whichever way the call went
    common = {"source": "3cx", "call_id": call_id, "direction": direction, "extension": agent,
              "from_number": ours if direction == Direction.OUT else theirs,
              "to_number": theirs if direction == Direction.OUT else ours}
    if call_type in {"Missed", "Notanswered"}:
        end = start + timedelta(seconds=30)
        return [CallEvent(kind="new", at=start, **common),  # type: ignore[arg-type]
                CallEvent(kind="hangup", at=end, cause="noAnswer", **common)]  # type: ignore[arg-type]
    end_text = one(data, "CallEndTimeUTC")
    end = start + timedelta(seconds=talk)
    if end_text:
        try:
            end = datetime.strptime(end_text, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise CallEventError("CallEndTimeUTC", "must be yyyy-MM-dd HH:mm:ss (UTC)") from None
        end = in_utc("CallEndTimeUTC", end)
    answered = end - timedelta(seconds=talk)
    return [CallEvent(kind="new", at=start, **common),  # type: ignore[arg-type]
            CallEvent(kind="answer", at=answered, **common),  # type: ignore[arg-type]
            CallEvent(kind="hangup", at=end, cause="normalClearing", **common)]  # type: ignore[arg-type]


def template(base_url: str, token: str) -> str:
    """The XML to upload in 3CX (Settings → CRM Integration → Server Side): lookup and call journal."""
    lookup = quoteattr(f"{base_url}/api/v1/3cx/{token}/lookup?number=[Number]")
    report = quoteattr(f"{base_url}/api/v1/3cx/{token}/journal")
    return f"""<?xml version="1.0"?>
<Crm xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" Country="DE" Name="CRM Inbox" Version="1" SupportsEmojis="true">
  <Number Prefix="AsIs" MaxLength="[MaxLength]" />
  <Connection MaxConcurrentRequests="4" />
  <Parameters>
    <Parameter Name="ReportCallEnabled" Type="Boolean" Editor="String" Title="Enable call journaling" Default="True" />
  </Parameters>
  <Authentication Type="No" />
  <Scenarios>
    <Scenario Id="" Type="REST">
      <Request Url={lookup} MessagePasses="0" RequestEncoding="UrlEncoded" RequestType="Get" ResponseType="Json" />
      <Rules>
        <Rule Type="Any">contact.id</Rule>
      </Rules>
      <Variables>
        <Variable Name="ContactID" Path="contact.id"><Filter /></Variable>
        <Variable Name="FirstName" Path="contact.first_name"><Filter /></Variable>
        <Variable Name="LastName" Path="contact.last_name"><Filter /></Variable>
        <Variable Name="CompanyName" Path="contact.company"><Filter /></Variable>
        <Variable Name="Email" Path="contact.email"><Filter /></Variable>
        <Variable Name="PhoneBusiness" Path="contact.phone"><Filter /></Variable>
        <Variable Name="ContactUrl" Path="contact.url"><Filter /></Variable>
      </Variables>
      <Outputs AllowEmpty="false">
        <Output Type="ContactID" Passes="0" Value="[ContactID]" />
        <Output Type="FirstName" Passes="0" Value="[FirstName]" />
        <Output Type="LastName" Passes="0" Value="[LastName]" />
        <Output Type="CompanyName" Passes="0" Value="[CompanyName]" />
        <Output Type="Email" Passes="0" Value="[Email]" />
        <Output Type="PhoneBusiness" Passes="0" Value="[PhoneBusiness]" />
        <Output Type="ContactUrl" Passes="0" Value="[ContactUrl]" />
        <Output Type="EntityId" Passes="0" Value="[ContactID]" />
        <Output Type="EntityType" Passes="0" Value="Contacts" />
      </Outputs>
    </Scenario>
    <Scenario Id="ReportCall" Type="REST">
      <Request SkipIf="[ReportCallEnabled]!=True" Url={report} MessagePasses="0" RequestEncoding="UrlEncoded" RequestType="Post" ResponseType="Json">
        <PostValues>
          <Value Key="Number" Passes="1" Type="String">[Number]</Value>
          <Value Key="CallType" Passes="1" Type="String">[CallType]</Value>
          <Value Key="CallDirection" Passes="1" Type="String">[CallDirection]</Value>
          <Value Key="Agent" Passes="1" Type="String">[Agent]</Value>
          <Value Key="AgentFirstName" Passes="1" Type="String">[AgentFirstName]</Value>
          <Value Key="AgentLastName" Passes="1" Type="String">[AgentLastName]</Value>
          <Value Key="Duration" Passes="1" Type="String">[Duration]</Value>
          <Value Key="CallStartTimeUTC" Passes="1" Type="String">[CallStartTimeUTC]</Value>
          <Value Key="CallEndTimeUTC" Passes="1" Type="String">[CallEndTimeUTC]</Value>
          <Value Key="Name" Passes="1" Type="String">[Name]</Value>
        </PostValues>
      </Request>
      <Variables />
      <Outputs AllowEmpty="true" />
    </Scenario>
  </Scenarios>
</Crm>
"""
