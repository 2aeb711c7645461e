"""Who is a mail about? Pure decisions over a parsed mail and a view of staff addresses.

Precision before recall: a party is named only when the evidence says so; otherwise the interaction
waits, unassigned, for a person to decide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from crm_inbox.mail.addresses import Address, is_noreply
from crm_inbox.mail.parse import ParsedMail
from crm_inbox.models import Direction


@dataclass(frozen=True)
class Party:
    address: Address
    role: str  # from, reply-to, to, cc


@dataclass
class Attribution:
    direction: Direction
    parties: list[Party] = field(default_factory=list)
    staff: list[str] = field(default_factory=list)  # staff addresses taking part
    reasons: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def can_be_contact(email: str, is_staff: Callable[[str], bool], own: frozenset[str]) -> bool:
    """Staff, the CRM's own addresses, null senders and no-reply/system addresses never become contacts."""
    return bool(email) and not is_staff(email) and email not in own and not is_noreply(email)


def decide(mail: ParsedMail, is_staff: Callable[[str], bool], own: frozenset[str]) -> Attribution:
    author = mail.author
    if author is None or not author.email:
        return Attribution(Direction.IN, reasons=["no usable sender address: left for triage"])

    if is_staff(author.email):
        result = Attribution(Direction.OUT, staff=[author.email])
        for role, addrs in (("to", mail.to), ("cc", mail.cc)):
            for addr in addrs:
                if can_be_contact(addr.email, is_staff, own):
                    if all(p.address.email != addr.email for p in result.parties):
                        result.parties.append(Party(addr, role))
                elif addr.email and is_staff(addr.email) and addr.email not in result.staff:
                    result.staff.append(addr.email)
        if result.parties:
            result.reasons.append(f"sent by staff address {author.email} to "
                                  + ", ".join(p.address.email for p in result.parties))
        else:
            result.direction = Direction.INTERNAL
            result.reasons.append(f"internal: sent by staff address {author.email} to staff and CRM only")
        return result

    result = Attribution(Direction.IN)
    if can_be_contact(author.email, is_staff, own):
        result.parties.append(Party(author, "from"))
        result.reasons.append(f"inbound from {author.email}")
        return result
    for addr in mail.reply_to:
        if can_be_contact(addr.email, is_staff, own):
            result.parties.append(Party(addr, "reply-to"))
            result.reasons.append(f"sender {author.email} is not a person; Reply-To names {addr.email}")
            return result
    result.reasons.append(f"sender {author.email} cannot be a contact: left for triage")
    return result
