"""Who is a mail about? Pure decisions over a parsed mail and a view of staff addresses.

Precision before recall: a party is named only when the evidence says so; otherwise the interaction
waits, unassigned, for a person to decide. Every decision carries its reasons, shown to staff.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from crm_inbox.config import MailSettings
from crm_inbox.mail.addresses import Address, is_noreply, normalise_email
from crm_inbox.mail.automatic import Automatic
from crm_inbox.mail.forwarded import Forwarded, find_forwarded
from crm_inbox.mail.parse import Limits, ParsedMail
from crm_inbox.models import Direction


@dataclass(frozen=True)
class Party:
    address: Address
    role: str  # from, reply-to, to, cc, forwarded-from, bounced
    by_name: bool = False  # only a display name is known: match it to exactly one contact or none


@dataclass
class Attribution:
    direction: Direction
    parties: list[Party] = field(default_factory=list)
    staff: list[str] = field(default_factory=list)  # staff addresses taking part
    reasons: list[str] = field(default_factory=list)
    automatic: str | None = None
    spoof_suspected: bool = False
    forwarded: Forwarded | None = None

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class Evidence:
    """What the transport adds to the message: the SMTP peer and the envelope sender."""

    peer: str | None
    envelope_from: str | None
    source: str = "smtp"


def can_be_contact(email: str, is_staff: Callable[[str], bool], own: frozenset[str]) -> bool:
    """Staff, the CRM's own addresses, null senders and no-reply/system addresses never become contacts."""
    return bool(email) and not is_staff(email) and email not in own and not is_noreply(email)


def peer_is_trusted(peer: str | None, networks: Iterable[str]) -> bool:
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)


_RESULT = re.compile(r"\b(dkim|spf)\s*=\s*(\w+)(?P<props>[^;]*)", re.I)


def _aligned(domain: str, author_domain: str) -> bool:
    domain = domain.lower().strip().rstrip(".")
    return bool(domain) and (author_domain == domain or author_domain.endswith("." + domain))


def authenticated_by_trusted_host(mail: ParsedMail, authserv_ids: Iterable[str],
                                  author: Address | None = None) -> str | None:
    """A passing DKIM or SPF verdict for the author's domain (From's, unless ``author`` says otherwise), in an
    Authentication-Results header added by one of our own hosts (RFC 8601); anyone can write such a header,
    so the host name must be ours."""
    trusted = {a.lower() for a in authserv_ids}
    author = author or mail.author
    if not trusted or author is None or not author.email:
        return None
    for value in mail.message.get_all("Authentication-Results") or []:
        text = " ".join(str(value).split())
        authserv = text.split(";", 1)[0].strip().split(" ")[0].lower()
        if authserv not in trusted:
            continue
        for match in _RESULT.finditer(text):
            method, result, props = match.group(1).lower(), match.group(2).lower(), match.group("props")
            if result != "pass":
                continue
            key = "header.d" if method == "dkim" else "smtp.mailfrom"
            prop = re.search(rf"{re.escape(key)}\s*=\s*([^\s;]+)", props, re.I)
            domain = prop.group(1).rpartition("@")[2] if prop else ""
            if _aligned(domain, author.domain):
                return f"{method}=pass for {domain} from {authserv}"
    return None


def decide(mail: ParsedMail, *, is_staff: Callable[[str], bool], is_staff_user: Callable[[str], bool],
           settings: MailSettings, evidence: Evidence, automatic: Automatic | None = None,
           limits: Limits | None = None) -> Attribution:
    """``is_staff``: a staff user's address or any address at our domains; ``is_staff_user``: a person's."""
    author, fallback = sender_of(mail, evidence)
    result = _decide(mail, author, is_staff=is_staff, is_staff_user=is_staff_user, settings=settings,
                     evidence=evidence, automatic=automatic, limits=limits)
    if fallback and not (automatic is not None and automatic.bounced):
        result.reasons.insert(0, fallback)
    return result


def sender_of(mail: ParsedMail, evidence: Evidence) -> tuple[Address | None, str | None]:
    """Who sent the mail: the first usable From address (what an MTA's DMARC check sees); without one the
    Sender, then the Reply-To, then the envelope sender. The second value is the reason when From did not
    decide (stored with the decision), else None."""
    author = mail.author
    header = mail.author_header
    if author is not None and author.email:
        if header == "From":
            return author, None
        return author, f"no usable From address: sender taken from {header} ({author.email})"
    envelope = normalise_email(evidence.envelope_from or "")
    if envelope:
        return (Address(author.name if author else "", envelope),
                f"no usable address in From, Sender or Reply-To: sender taken from the envelope ({envelope})")
    return author, None


def _decide(mail: ParsedMail, author: Address | None, *, is_staff: Callable[[str], bool],
            is_staff_user: Callable[[str], bool], settings: MailSettings, evidence: Evidence,
            automatic: Automatic | None, limits: Limits | None) -> Attribution:
    own = settings.own_addresses
    if automatic is not None and automatic.bounced:
        result = Attribution(Direction.IN, automatic=automatic.reason)
        result.parties = [Party(Address("", email), "bounced") for email in automatic.bounced]
        result.reasons.append(f"{automatic.reason} about {', '.join(automatic.bounced)}")
        return result
    if author is None or not author.email:
        return Attribution(Direction.IN, reasons=["no usable sender address: left for triage"],
                           automatic=automatic.reason if automatic else None)

    if is_staff(author.email):
        if evidence.source == "file":
            trust: str | None = "imported from a file by the operator"
        elif peer_is_trusted(evidence.peer, settings.trusted_relays):
            trust = f"arrived from trusted relay {evidence.peer}"
        else:
            trust = authenticated_by_trusted_host(mail, settings.trusted_authserv_ids, author)
        if trust is None:
            # Anyone can type a staff address into From: treat it as external mail, and believe nothing
            # it claims to forward.
            result = Attribution(Direction.IN, spoof_suspected=True, automatic=automatic.reason if automatic else None)
            result.reasons.append(f"possible spoof: staff address {author.email} from untrusted peer "
                                  f"{evidence.peer or 'unknown'} without a passing DKIM/SPF result; left for triage")
            return result
        result = _staff_mail(mail, author, is_staff, is_staff_user(author.email), own, limits)
        result.reasons.append(f"staff sender trusted: {trust}")
    else:
        result = _external_mail(mail, author, is_staff, own)
    if automatic is not None:
        result.automatic = automatic.reason
        result.reasons.append(f"automatic mail ({automatic.reason}): recorded for known contacts only")
    return result


def _external_mail(mail: ParsedMail, author: Address, is_staff: Callable[[str], bool],
                   own: frozenset[str]) -> Attribution:
    result = Attribution(Direction.IN)
    if can_be_contact(author.email, is_staff, own):
        # Also when the mail forwards someone else's: a customer who forwards wrote to us.
        result.parties.append(Party(author, "from"))
        result.reasons.append(f"inbound from {author.email}")
        return result
    _reply_to(mail, author, is_staff, own, result)
    return result


def _reply_to(mail: ParsedMail, author: Address, is_staff: Callable[[str], bool], own: frozenset[str],
              result: Attribution) -> bool:
    """Web forms send from a no-reply or own-domain address with the customer in Reply-To."""
    for addr in mail.reply_to:
        if can_be_contact(addr.email, is_staff, own):
            result.parties.append(Party(addr, "reply-to"))
            result.reasons.append(f"sender {author.email} is not a person; Reply-To names {addr.email}")
            return True
    if not result.parties:
        result.reasons.append(f"sender {author.email} cannot be a contact: left for triage")
    return False


def _staff_mail(mail: ParsedMail, author: Address, is_staff: Callable[[str], bool], author_is_person: bool,
                own: frozenset[str], limits: Limits | None) -> Attribution:
    staff = [author.email]
    external: list[Party] = []
    for role, addrs in (("to", mail.to), ("cc", mail.cc)):
        for addr in addrs:
            if can_be_contact(addr.email, is_staff, own):
                if all(p.address.email != addr.email for p in external):
                    external.append(Party(addr, role))
            elif addr.email and is_staff(addr.email) and addr.email not in staff:
                staff.append(addr.email)
    if not author_is_person and any(can_be_contact(a.email, is_staff, own) for a in mail.reply_to):
        # A web form or robot at our own domain (website@, no-reply@) writing on a customer's behalf.
        result = Attribution(Direction.IN)
        _reply_to(mail, author, is_staff, own, result)
        return result
    if external:
        result = Attribution(Direction.OUT, parties=external, staff=staff)
        result.reasons.append(f"sent by staff address {author.email} to "
                              + ", ".join(p.address.email for p in external))
        return result

    forwarded = find_forwarded(mail, limits)
    if forwarded is None:
        result = Attribution(Direction.INTERNAL, staff=staff)
        result.reasons.append(f"internal: sent by staff address {author.email} to staff and CRM only")
        return result

    original = forwarded.sender
    result = Attribution(Direction.IN, staff=staff, forwarded=forwarded)
    where = f"forwarded by staff address {author.email}, {forwarded.style}"
    if original.email and is_staff(original.email):
        # A colleague's own sent mail, forwarded: the people it was sent to are the parties.
        result.direction = Direction.OUT
        result.parties = [Party(a, "to") for a in forwarded.to if can_be_contact(a.email, is_staff, own)]
        result.reasons.append(f"{where}; original sent by staff address {original.email}")
        if not result.parties:
            result.direction = Direction.INTERNAL
    elif original.email and can_be_contact(original.email, is_staff, own):
        result.parties.append(Party(original, "forwarded-from"))
        result.reasons.append(f"{where}; original sender {original.email}")
    elif not original.email and original.name:
        result.parties.append(Party(original, "forwarded-from", by_name=True))
        result.reasons.append(f"{where}; original sender known only by name {original.name!r}")
    else:
        result.reasons.append(f"{where}; original sender {original.email or 'unknown'} cannot be a contact: "
                              "left for triage")
    return result
