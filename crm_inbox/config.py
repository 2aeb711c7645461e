"""Typed, frozen settings read from one TOML file, with environment overrides.

Every key has a default in ``config/default.toml``; a bad file or key stops start-up with one
``ConfigError`` line that names the key, never a traceback.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from crm_inbox.time_range import EARLIEST, LATEST

ENV_PREFIX = "CRM_INBOX_"
CONFIG_ENV = "CRM_INBOX_CONFIG"


class ConfigError(Exception):
    """A configuration problem, worded for the operator (one line, names the key)."""


DEFAULT_FREE_MAIL_DOMAINS = (
    "gmail.com", "googlemail.com", "gmx.de", "gmx.net", "gmx.at", "gmx.ch", "web.de", "t-online.de",
    "freenet.de", "arcor.de", "posteo.de", "mailbox.org", "online.de", "email.de", "1und1.de",
    "aol.com", "aol.de", "outlook.com", "outlook.de", "hotmail.com", "hotmail.de", "live.com", "live.de",
    "msn.com", "yahoo.com", "yahoo.de", "ymail.com", "icloud.com", "me.com", "mac.com", "proton.me",
    "protonmail.com", "bluewin.ch", "gmx.com", "mail.com", "yandex.com", "zoho.com",
)


@dataclass(frozen=True)
class ServiceSettings:
    instance_dir: str = "instance"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///instance/crm.db"
    echo: bool = False


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str = ""
    base_url: str = ""
    threads: int = 32
    connection_limit: int = 1000  # open connections (idle and half-sent ones too) before new ones wait
    channel_timeout: int = 60  # seconds a connection may stay quiet (no request in progress) before it is closed
    secure_cookies: bool = False  # Secure cookies even without an https base_url (TLS ends at a proxy)
    proxy_hops: int = 0  # reverse proxies in front whose X-Forwarded-For/-Proto are believed
    login_max_failures: int = 5  # failed logins per address and client within the window …
    login_max_failures_per_ip: int = 50  # … or per client for any addresses, before 429
    login_window_minutes: int = 15


@dataclass(frozen=True)
class SmtpSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 2525
    max_message_bytes: int = 26_214_400
    hostname: str = ""
    bare_newline: str = "normalize"  # a line ending in a bare LF: "normalize" to CRLF (as Postfix) or "reject"
    max_sessions: int = 200  # concurrent sessions; beyond: 421 4.7.0
    max_sessions_per_client: int = 20  # from one client address (trusted relays are not capped)
    idle_timeout_seconds: int = 300  # waiting for a command or for more DATA; then 421 4.4.2 and closed
    max_recipients: int = 100  # RCPTs per message; beyond: 452 4.5.3


@dataclass(frozen=True)
class MailSettings:
    crm_addresses: tuple[str, ...] = ("crm@localhost",)
    support_addresses: tuple[str, ...] = ("support@localhost",)
    staff_domains: tuple[str, ...] = ()
    free_mail_domains: tuple[str, ...] = DEFAULT_FREE_MAIL_DOMAINS
    trusted_relays: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    trusted_authserv_ids: tuple[str, ...] = ()
    create_company_for_unknown_domain: bool = False
    max_nesting_depth: int = 20
    max_parts: int = 500
    max_decoded_bytes: int = 52_428_800

    def __post_init__(self) -> None:
        # Addresses and domains compare case-insensitively everywhere; normalise once here.
        for name in ("crm_addresses", "support_addresses", "staff_domains", "free_mail_domains"):
            object.__setattr__(self, name, tuple(v.strip().lower() for v in getattr(self, name)))

    @property
    def own_addresses(self) -> frozenset[str]:
        return frozenset(self.crm_addresses) | frozenset(self.support_addresses)


@dataclass(frozen=True)
class PhoneSettings:
    default_region: str = "DE"
    own_numbers: tuple[str, ...] = ()
    max_call_minutes: int = 240


@dataclass(frozen=True)
class TicketSettings:
    subject_prefix: str = "#"  # "[#10042]" in subjects finds the ticket
    acknowledge: bool = False
    ack_subject: str = "[{ticket}] {subject}"
    ack_body: str = ("Guten Tag,\n\nvielen Dank für Ihre Nachricht. Wir haben sie unter der Nummer {ticket} "
                     "erfasst und melden uns so schnell wie möglich.\n\nThank you for your message. We have "
                     "recorded it as {ticket} and will get back to you as soon as we can.\n")
    ack_window_minutes: int = 1440  # at most one acknowledgement per sender in this window
    loop_max_tickets: int = 5  # more new tickets than this from one sender …
    loop_window_minutes: int = 60  # … within this many minutes: a suspected mail loop, no new tickets
    new_ticket_after_closed_days: int = 0  # a reply to a ticket closed longer ago opens a new, linked ticket


@dataclass(frozen=True)
class NotificationSettings:
    """How the CRM sends mail itself (ticket acknowledgements, reminders)."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = ""
    from_address: str = "crm@localhost"
    timeout_seconds: int = 30


@dataclass(frozen=True)
class ReminderSettings:
    """Follow-up reminders: the rules that create them, and how they fire."""

    missed_call_callback: bool = True  # a missed call → "call back" for the person it rang for
    missed_call_callback_minutes: int = 0  # due this long after the call
    ticket_no_reply: bool = True  # a ticket nobody answered → a reminder for its assignee
    ticket_no_reply_minutes: int = 240  # … this long after opening or after the customer's last reply
    mail_note: bool = True  # "Wiedervorlage Freitag" / "remind me in 3 days" in a forwarding note
    timezone: str = "Europe/Berlin"  # for "tomorrow 9:00", and for times in notification mails
    default_hour: int = 9  # a day without a time ("Freitag") means this hour
    team_address: str = ""  # notifications of reminders for the team; empty: every active staff user
    tick_seconds: int = 30  # how often the scheduler looks for due reminders anyway (other nodes' rows)
    notify_by_mail: bool = True


@dataclass(frozen=True)
class CtiSettings:
    """Webhook secrets. Empty: that route refuses everything (a PBX must be given a token)."""

    token: str = ""
    sipgate_token: str = ""
    placetel_token: str = ""
    placetel_secret: str = ""
    twilio_token: str = ""
    twilio_auth_token: str = ""
    threecx_token: str = ""

    def token_for(self, system: str) -> str:
        return str(getattr(self, f"{system}_token", "") or self.token)


IMAP_TLS_MODES = ("tls", "starttls", "none")
IMAP_AFTER_IMPORT = ("move", "flag")
IMAP_ROLES = ("crm", "support")


@dataclass(frozen=True)
class ImapAccount:
    """One mailbox the CRM polls (``[[imap.accounts]]``). The password never lives in the config file."""

    name: str = ""
    host: str = ""
    port: int = 0  # 0: 993 with tls = "tls", else 143
    tls: str = "tls"  # "tls" (implicit, port 993), "starttls", or "none" (local tests only)
    ca_file: str = ""  # a private CA or self-signed certificate to trust; empty: the system's CAs
    username: str = ""
    password_env: str = ""  # name of the environment variable that holds the password …
    password_file: str = ""  # … or a file holding it
    folder: str = "INBOX"  # levels separated by "/", whatever the server's separator
    after_import: str = "move"  # "move" to move_to, or "flag" (set ``flag`` and leave the message)
    move_to: str = "CRM/Imported"  # created when missing
    flag: str = "\\Seen"
    role: str = "crm"  # "crm": like mail to the CRM address; "support": like mail to the support address
    poll_seconds: int = 60  # without IDLE: look for new mail this often
    since: str = ""  # "2026-01-31": the first import of an existing folder skips older mail

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.tls == "tls" else 143)

    def password(self, environ: Mapping[str, str] | None = None) -> str:
        """Read when connecting (not at start-up), so one account's missing secret stops only that account."""
        if self.password_env:
            value = (os.environ if environ is None else environ).get(self.password_env)
            if not value:
                raise ConfigError(f"config: [[imap.accounts]] {self.name!r}: the environment variable "
                                  f"{self.password_env} (password_env) is not set")
            return value
        try:
            return Path(self.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"config: [[imap.accounts]] {self.name!r}: cannot read password_file "
                              f"{self.password_file}: {exc.strerror}") from None


@dataclass(frozen=True)
class ImapSettings:
    accounts: tuple[ImapAccount, ...] = ()
    timeout_seconds: int = 60  # socket timeout: a dead connection is given up after this long
    idle_seconds: int = 300  # IDLE is renewed (and the folder searched) at least this often
    reconnect_max_seconds: int = 300  # reconnect backoff doubles from 1 s up to this
    batch_size: int = 200  # messages per FETCH and per commit


@dataclass(frozen=True)
class RetentionSettings:
    """How long raw data is kept (0: for ever). Run daily inside ``serve`` and by ``crm-inbox privacy purge``."""

    inbound_raw_days: int = 0  # raw bytes of processed/ignored inbound mail; the row (hashes) stays
    call_days: int = 0  # calls, their events and their timeline entries
    event_days: int = 90  # webhook events (and their deliveries) unless a delivery is still pending


@dataclass(frozen=True)
class PrivacySettings:
    audit_mail_views: bool = False  # opening a mail's full text (page or API) writes an audit entry


@dataclass(frozen=True)
class CompanySettings:
    """Our own company: the letterhead and footer of quotes and order confirmations, and the business-letter
    details German law requires on them and in mail (§ 35a GmbHG, § 37a HGB)."""

    name: str = ""  # with the legal form: "Muster Maschinenbau GmbH"
    street: str = ""
    postcode: str = ""
    city: str = ""
    country: str = "DE"  # ISO 3166 code; a recipient in another country gets the country line
    phone: str = ""
    email: str = ""
    web: str = ""
    vat_id: str = ""  # USt-IdNr.
    seat: str = ""  # Sitz der Gesellschaft
    register_court: str = ""  # Registergericht: "Amtsgericht München"
    register_number: str = ""  # "HRB 123456"
    managing_directors: str = ""  # Geschäftsführer, as printed
    bank_name: str = ""
    iban: str = ""
    bic: str = ""
    logo_file: str = ""  # PNG or JPEG for the letterhead; relative paths are read from the instance folder
    language: str = "de"  # documents for a customer with no language of their own: "de" or "en"
    payment_terms_days: int = 14  # "zahlbar innerhalb von 14 Tagen ohne Abzug"
    quote_valid_days: int = 30  # a quote is valid this many days from its date


@dataclass(frozen=True)
class SalesSettings:
    """Opportunities, quotes and orders."""

    # Open stages in pipeline order, "key:probability" (won and lost always exist and end a deal).
    stages: tuple[str, ...] = ("qualified:10", "needs_analysis:25", "quote_sent:50", "negotiation:75")
    vat_rates: tuple[str, ...] = ("19", "7", "0")  # percent; the first is the default for a new line
    quote_number_format: str = "AN-{year}-{seq:04d}"
    order_number_format: str = "AB-{year}-{seq:04d}"
    quote_follow_up_days: int = 7  # a sent quote without the customer's reply → "Angebot nachfassen"

    @property
    def stage_probabilities(self) -> dict[str, int]:
        """The open stages in order with their default probability, then won (100) and lost (0)."""
        out: dict[str, int] = {}
        for entry in self.stages:
            key, _, probability = entry.partition(":")
            out[key.strip()] = int(probability)
        return out | {"won": 100, "lost": 0}

    @property
    def rates(self) -> tuple[Decimal, ...]:
        return tuple(Decimal(rate) for rate in self.vat_rates)


@dataclass(frozen=True)
class ImportSettings:
    """Importing address books (CSV, XLSX, vCard)."""

    max_upload_bytes: int = 52_428_800  # a web upload larger than this is refused (the CLI reads any size)
    max_rows: int = 1_000_000


DOCUMENT_STORAGES = ("database", "directory")


@dataclass(frozen=True)
class DocumentSettings:
    """The customer file (Kundenakte): files staff upload to a person or a company."""

    max_bytes: int = 26_214_400  # one upload
    storage: str = "database"  # "database", or "directory" (files under ``directory``, rows in the database)
    directory: str = "documents"  # relative paths are inside the instance folder


@dataclass(frozen=True)
class WebhookSettings:
    """Outbound webhooks (Standard Webhooks signatures)."""

    # Targets on loopback, link-local or private networks are refused unless inside one of these networks
    # (no SSRF into the office network through a webhook URL): ["127.0.0.1/32"] for a receiver on this host.
    allowed_private_networks: tuple[str, ...] = ()
    timeout_seconds: int = 10  # connect and read, per attempt
    retry_hours: int = 24  # a delivery is retried with exponential back-off for this long, then given up
    disable_after_hours: int = 72  # a subscription failing (no 2xx) this long is disabled with a notice
    poll_seconds: int = 5  # how often ``serve`` looks for due deliveries besides being woken after commits


@dataclass(frozen=True)
class PhoneBookSettings:
    """Phone books for desk phones and routers (Yealink, Grandstream, Snom, Fritz!Box) and a vCard file."""

    enabled: bool = True


@dataclass(frozen=True)
class CampaignSettings:
    """Campaigns to a segment by e-mail or letter."""

    # Campaign mails released per minute and per campaign (two campaigns sending at once release twice as
    # many), counted over all ``serve`` processes sharing the database.
    per_minute: int = 60
    approval_threshold: int = 500  # a campaign to more recipients than this needs an admin's approval
    # The sender address of campaign mail (one plain address); empty: [notifications] from_address. When it is
    # none of [mail] crm_addresses / support_addresses, the mail says "Reply-To: <first CRM address>" so that
    # replies still reach the CRM.
    from_address: str = ""
    poll_seconds: int = 5  # how often ``serve`` looks for campaigns to send besides being woken


@dataclass(frozen=True)
class AnalyticsSettings:
    """The analytical store (DuckDB), apart from the operative database, and the reports read from it."""

    # Reports at /reports in the web app (read from the store only). Off: no page, no refresh by ``serve``.
    enabled: bool = True
    # ``serve`` refreshes the store this often, in a process of its own at low priority; 0: never (cron runs
    # ``crm-inbox analytics refresh`` instead).
    refresh_minutes: int = 60
    # Where the refresh reads from: empty is [database] url; ideally a read replica's URL. Always read-only.
    source_url: str = ""
    path: str = ""  # the DuckDB file; empty: <instance_dir>/analytics.duckdb
    # Staff figures (works council, § 87 (1) no. 6 BetrVG): a group's figures show only when at least this many
    # people stand behind them, after every filter.
    min_group_size: int = 5
    # Figures per staff member. Off by default; switch on only with a works agreement that allows them (README).
    per_person_reports: bool = False

    def store_path(self, instance_dir: str) -> Path:
        return Path(self.path) if self.path else Path(instance_dir) / "analytics.duckdb"


AUTO_PROCESSES_MAX = 4


@dataclass(frozen=True)
class WorkerSettings:
    """Processing stored mail (the pipeline) in ``serve``, ``crm-inbox ingest`` and ``imap fetch``."""

    # Processes that process mail side by side when a backlog builds up (a burst, a history import). 0: auto,
    # the CPUs serve may use (at most 4), on either database: SQLite takes one writer at a time, but a message's
    # parsing and decisions run before its short write transaction, so two processes process a backlog of
    # 10,000 mails about 30 % faster than one (bench/ingest.py). 1: processing stays in serve's worker thread.
    processes: int = 0
    # A backlog of at least this many messages starts the processes; a trickle is processed in-thread.
    backlog_for_processes: int = 50

    def process_count(self) -> int:
        if self.processes > 0:
            return self.processes
        # The CPUs this process may use (a container's or taskset's share, not the host's), at most 4: each
        # worker holds a database connection, and several nodes share the server's max_connections.
        return max(1, min(len(os.sched_getaffinity(0)), AUTO_PROCESSES_MAX))


@dataclass(frozen=True)
class Settings:
    service: ServiceSettings = field(default_factory=ServiceSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    web: WebSettings = field(default_factory=WebSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    phone: PhoneSettings = field(default_factory=PhoneSettings)
    cti: CtiSettings = field(default_factory=CtiSettings)
    tickets: TicketSettings = field(default_factory=TicketSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    reminders: ReminderSettings = field(default_factory=ReminderSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    imap: ImapSettings = field(default_factory=ImapSettings)
    company: CompanySettings = field(default_factory=CompanySettings)
    sales: SalesSettings = field(default_factory=SalesSettings)
    imports: ImportSettings = field(default_factory=ImportSettings)
    documents: DocumentSettings = field(default_factory=DocumentSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    phone_book: PhoneBookSettings = field(default_factory=PhoneBookSettings)
    campaigns: CampaignSettings = field(default_factory=CampaignSettings)
    analytics: AnalyticsSettings = field(default_factory=AnalyticsSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)

    @property
    def instance_path(self) -> Path:
        return Path(self.service.instance_dir)


_SECTION_TYPES: dict[str, type] = {
    "service": ServiceSettings, "database": DatabaseSettings, "web": WebSettings,
    "smtp": SmtpSettings, "mail": MailSettings, "phone": PhoneSettings, "cti": CtiSettings,
    "tickets": TicketSettings, "notifications": NotificationSettings, "reminders": ReminderSettings,
    "retention": RetentionSettings, "privacy": PrivacySettings,
    "imap": ImapSettings, "company": CompanySettings, "sales": SalesSettings,
    "imports": ImportSettings, "documents": DocumentSettings, "webhooks": WebhookSettings,
    "phone_book": PhoneBookSettings, "campaigns": CampaignSettings, "analytics": AnalyticsSettings,
    "worker": WorkerSettings,
}
# Tables that appear as arrays of tables (``[[imap.accounts]]``), by the dataclass of one entry.
_TABLE_TYPES: dict[type, str] = {ImapAccount: "imap.accounts"}


def _coerce(where: str, expected: Any, value: Any) -> Any:
    """Check one TOML value against the dataclass field type; return it in the field's shape."""
    origin = typing.get_origin(expected)
    if expected is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if expected is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    if expected is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if origin is tuple and typing.get_args(expected)[0] in _TABLE_TYPES:
        cls = typing.get_args(expected)[0]
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(f"{where}: expected [[{_TABLE_TYPES[cls]}]] tables")
        return tuple(_build_entry(cls, index, entry) for index, entry in enumerate(value, 1))
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    raise ConfigError(f"{where}: unsupported type")  # pragma: no cover - a programming error


def _resolve_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(types) | globals())


def _build_section(name: str, raw: Mapping[str, Any]) -> Any:
    return _build_table(f"[{name}]", _SECTION_TYPES[name], raw)


def _build_table(label: str, cls: type, raw: Mapping[str, Any], refused: Mapping[str, str] | None = None) -> Any:
    hints = _resolve_types(cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if refused and key in refused:
            raise ConfigError(f"config: {label} {key}: {refused[key]}")
        if key not in hints:
            raise ConfigError(f"config: unknown key {label} {key}")
        values[key] = _coerce(f"config: {label} {key}", hints[key], value)
    return cls(**values)


_REFUSED_ACCOUNT_KEYS = {"password": "a password must not be written in the config file; "
                                     "use password_env (an environment variable) or password_file"}


def _build_entry(cls: type, index: int, raw: Mapping[str, Any]) -> Any:
    """One ``[[imap.accounts]]`` table; errors name it by its ``name`` (or its place in the file)."""
    name = raw.get("name")
    which = repr(name) if isinstance(name, str) and name else f"#{index}"
    label = f"[[{_TABLE_TYPES[cls]}]] {which}"
    return _build_table(label, cls, raw, _REFUSED_ACCOUNT_KEYS)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``CRM_INBOX_SMTP_PORT=2526`` overrides ``[smtp] port``; ``…_FILE`` reads the value from a file.

    Variables whose second word is not a section (``CRM_INBOX_CONFIG``, test settings) are not keys.
    """
    out: dict[str, dict[str, Any]] = {}
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX):
            continue
        section, _, key = var[len(ENV_PREFIX):].lower().partition("_")
        if section not in _SECTION_TYPES or not key:
            continue
        if key.endswith("_file") and key[:-5] in _resolve_types(_SECTION_TYPES[section]):
            key = key[:-5]
            try:
                value = Path(value).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"config: {var}: cannot read {value}: {exc.strerror}") from None
        hint = _resolve_types(_SECTION_TYPES[section]).get(key)
        if typing.get_origin(hint) is tuple and typing.get_args(hint)[0] in _TABLE_TYPES:
            raise ConfigError(f"config: {var}: [[{_TABLE_TYPES[typing.get_args(hint)[0]]}]] can only be set in "
                              "the config file")
        if typing.get_origin(hint) is tuple:  # lists come comma-separated from the environment
            value = [v.strip() for v in value.split(",") if v.strip()]  # type: ignore[assignment]
        out.setdefault(section, {})[key] = value
    return out


def _validate(settings: Settings) -> None:
    if not settings.database.url.strip():
        raise ConfigError("config: [database] url must not be empty")
    for name, port in (("web", settings.web.port), ("smtp", settings.smtp.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(f"config: [{name}] port must be between 0 and 65535, got {port}")
    if settings.web.connection_limit < 10:
        raise ConfigError("config: [web] connection_limit must be at least 10")
    if settings.web.channel_timeout < 1:
        raise ConfigError("config: [web] channel_timeout must be at least 1")
    if settings.smtp.max_message_bytes < 1024:
        raise ConfigError("config: [smtp] max_message_bytes must be at least 1024")
    if settings.smtp.bare_newline not in ("normalize", "reject"):
        raise ConfigError(f"config: [smtp] bare_newline must be \"normalize\" or \"reject\", "
                          f"got {settings.smtp.bare_newline!r}")
    for key in ("max_sessions", "max_sessions_per_client", "idle_timeout_seconds", "max_recipients"):
        if getattr(settings.smtp, key) < 1:
            raise ConfigError(f"config: [smtp] {key} must be at least 1")
    for key in ("crm_addresses", "support_addresses"):
        for addr in getattr(settings.mail, key):
            if addr.count("@") != 1 or addr.startswith("@") or addr.endswith("@"):
                raise ConfigError(f"config: [mail] {key}: {addr!r} is not an e-mail address")
    if not settings.mail.own_addresses:
        raise ConfigError("config: [mail] crm_addresses: at least one CRM or support address is needed")
    for net in settings.mail.trusted_relays:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"config: [mail] trusted_relays: {net!r} is not a network") from None
    for key in ("ack_window_minutes", "loop_max_tickets", "loop_window_minutes", "new_ticket_after_closed_days"):
        if getattr(settings.tickets, key) < 0:
            raise ConfigError(f"config: [tickets] {key} must not be negative")
    if not 0 < settings.notifications.smtp_port <= 65535:
        raise ConfigError("config: [notifications] smtp_port must be between 1 and 65535")
    if settings.notifications.from_address.count("@") != 1:
        raise ConfigError(f"config: [notifications] from_address: {settings.notifications.from_address!r} "
                          "is not an e-mail address")
    for key in ("ack_subject", "ack_body"):
        try:
            getattr(settings.tickets, key).format(ticket="#1", subject="x", name="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"config: [tickets] {key}: only {{ticket}}, {{subject}} and {{name}} may be used "
                              f"({exc})") from None
    for key in ("missed_call_callback_minutes", "ticket_no_reply_minutes"):
        if getattr(settings.reminders, key) < 0:
            raise ConfigError(f"config: [reminders] {key} must not be negative")
    if not 1 <= settings.reminders.tick_seconds <= 3600:
        raise ConfigError("config: [reminders] tick_seconds must be between 1 and 3600")
    if not 0 <= settings.reminders.default_hour <= 23:
        raise ConfigError("config: [reminders] default_hour must be between 0 and 23")
    if settings.reminders.team_address and settings.reminders.team_address.count("@") != 1:
        raise ConfigError(f"config: [reminders] team_address: {settings.reminders.team_address!r} "
                          "is not an e-mail address")
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(settings.reminders.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"config: [reminders] timezone: unknown time zone {settings.reminders.timezone!r}") from None
    for key in ("inbound_raw_days", "call_days", "event_days"):
        if getattr(settings.retention, key) < 0:
            raise ConfigError(f"config: [retention] {key} must not be negative (0 keeps for ever)")
    _validate_imap(settings)
    _validate_sales(settings)
    _validate_exchange(settings)
    if settings.phone.max_call_minutes < 1:
        raise ConfigError("config: [phone] max_call_minutes must be at least 1")
    import phonenumbers  # local: only needed for this check

    if settings.phone.default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"config: [phone] default_region: unknown region {settings.phone.default_region!r}")


_NUMBER_FORMAT_KEYS = {"year": 2026, "seq": 1}


# One bare address (as the outbox accepts a recipient): no display name, list, route or line break.
_PLAIN_ADDRESS = re.compile(r"^[^\s@<>,;:\"()\[\]\\]+@[A-Za-z0-9\u0080-\uffff-]+(\.[A-Za-z0-9\u0080-\uffff-]+)*$")


def _validate_exchange(settings: Settings) -> None:
    """[imports], [documents], [webhooks], [campaigns]: numbers in range, known choices, real networks."""
    positive = {"[imports] max_upload_bytes": settings.imports.max_upload_bytes,
                "[imports] max_rows": settings.imports.max_rows, "[documents] max_bytes": settings.documents.max_bytes,
                "[webhooks] timeout_seconds": settings.webhooks.timeout_seconds,
                "[webhooks] retry_hours": settings.webhooks.retry_hours,
                "[webhooks] disable_after_hours": settings.webhooks.disable_after_hours,
                "[webhooks] poll_seconds": settings.webhooks.poll_seconds,
                "[campaigns] per_minute": settings.campaigns.per_minute,
                "[campaigns] poll_seconds": settings.campaigns.poll_seconds}
    if settings.analytics.refresh_minutes < 0:
        raise ConfigError("config: [analytics] refresh_minutes must be 0 (never) or more")
    if not 0 <= settings.worker.processes <= 64:
        raise ConfigError(f"config: [worker] processes must be 0 (auto) to 64, got {settings.worker.processes}")
    if settings.worker.backlog_for_processes < 1:
        raise ConfigError("config: [worker] backlog_for_processes must be 1 or more")
    if settings.analytics.min_group_size < 2:
        # One person is no group: a "team" of one shows that person's figures.
        raise ConfigError("config: [analytics] min_group_size must be at least 2, got "
                          f"{settings.analytics.min_group_size}")
    if settings.campaigns.approval_threshold < 0:
        raise ConfigError("config: [campaigns] approval_threshold must be 0 or more")
    campaign_from = settings.campaigns.from_address
    if campaign_from and not _PLAIN_ADDRESS.match(campaign_from):
        raise ConfigError(f"config: [campaigns] from_address: {campaign_from!r} is not one plain e-mail address "
                          "(like \"news@example.com\", without a name or brackets; the name is the campaign's)")
    for name, value in positive.items():
        if value < 1:
            raise ConfigError(f"config: {name} must be at least 1, got {value}")
    if settings.documents.storage not in DOCUMENT_STORAGES:
        raise ConfigError(f"config: [documents] storage: expected one of {', '.join(DOCUMENT_STORAGES)}, "
                          f"got {settings.documents.storage!r}")
    if settings.documents.storage == "directory" and not settings.documents.directory.strip():
        raise ConfigError("config: [documents] directory is required with storage = \"directory\"")
    for net in settings.webhooks.allowed_private_networks:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"config: [webhooks] allowed_private_networks: {net!r} is not a network "
                              "(e.g. \"127.0.0.1/32\")") from None


def _validate_sales(settings: Settings) -> None:
    sales = settings.sales
    seen: set[str] = set()
    for entry in sales.stages:
        key, colon, probability = entry.partition(":")
        key = key.strip()
        if not colon or not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", key) or not probability.strip().isdigit() \
                or not 0 <= int(probability) <= 100:
            raise ConfigError(f"config: [sales] stages: {entry!r} is not \"key:probability\" (a lower-case key, "
                              "0 to 100)")
        if key in seen or key in ("won", "lost"):
            raise ConfigError(f"config: [sales] stages: {key!r} is given twice or is a closing stage (won, lost)")
        seen.add(key)
    if not sales.stages:
        raise ConfigError("config: [sales] stages: at least one open stage is needed")
    for rate in sales.vat_rates:
        try:
            ok = Decimal(rate).is_finite() and 0 <= Decimal(rate) < 100
        except InvalidOperation:
            ok = False
        if not ok:
            raise ConfigError(f"config: [sales] vat_rates: {rate!r} is not a percentage")
    if not sales.vat_rates:
        raise ConfigError("config: [sales] vat_rates: at least one rate is needed")
    for key in ("quote_number_format", "order_number_format"):
        fmt = getattr(sales, key)
        try:
            sample = fmt.format(**_NUMBER_FORMAT_KEYS)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"config: [sales] {key}: only {{year}} and {{seq}} may be used ({exc})") from None
        if "{seq" not in fmt or not sample.strip() or not re.fullmatch(r"[A-Za-z0-9/_.-]+", sample):
            raise ConfigError(f"config: [sales] {key} must contain {{seq}} and give letters, digits and - / _ . "
                              "only")
    if settings.sales.quote_follow_up_days < 0:
        raise ConfigError("config: [sales] quote_follow_up_days must not be negative")
    company = settings.company
    if company.language not in ("de", "en"):
        raise ConfigError(f"config: [company] language must be \"de\" or \"en\", got {company.language!r}")
    for key in ("payment_terms_days", "quote_valid_days"):
        if getattr(company, key) < 0:
            raise ConfigError(f"config: [company] {key} must not be negative")


def _validate_imap(settings: Settings) -> None:
    imap = settings.imap
    for key in ("timeout_seconds", "idle_seconds", "reconnect_max_seconds", "batch_size"):
        if getattr(imap, key) < 1:
            raise ConfigError(f"config: [imap] {key} must be at least 1")
    seen: set[str] = set()
    for index, account in enumerate(imap.accounts, 1):
        label = f"[[imap.accounts]] {account.name!r}" if account.name else f"[[imap.accounts]] #{index}"
        if not account.name.strip():
            raise ConfigError(f"config: {label}: name is required")
        if account.name in seen:
            raise ConfigError(f"config: {label}: the name is used by another account")
        seen.add(account.name)
        for key in ("host", "username", "folder"):
            if not getattr(account, key).strip():
                raise ConfigError(f"config: {label} {key} is required")
        choices = {"tls": IMAP_TLS_MODES, "after_import": IMAP_AFTER_IMPORT, "role": IMAP_ROLES}
        for key, allowed in choices.items():
            if getattr(account, key) not in allowed:
                raise ConfigError(f"config: {label} {key}: expected one of {', '.join(allowed)}, "
                                  f"got {getattr(account, key)!r}")
        if bool(account.password_env) == bool(account.password_file):
            raise ConfigError(f"config: {label}: give exactly one of password_env or password_file")
        if not 0 <= account.port <= 65535:
            raise ConfigError(f"config: {label} port must be between 0 and 65535, got {account.port}")
        if account.poll_seconds < 1:
            raise ConfigError(f"config: {label} poll_seconds must be at least 1")
        if account.after_import == "move" and not account.move_to.strip():
            raise ConfigError(f"config: {label} move_to is required with after_import = \"move\"")
        if account.after_import == "flag" and not account.flag.strip():
            raise ConfigError(f"config: {label} flag is required with after_import = \"flag\"")
        if account.after_import == "move" and account.move_to.strip("/") == account.folder.strip("/"):
            raise ConfigError(f"config: {label} move_to must differ from folder")
        if account.since:
            try:
                since: date | None = date.fromisoformat(account.since)
            except ValueError:
                since = None
            if since is None or not EARLIEST.year <= since.year < LATEST.year:
                raise ConfigError(f"config: {label} since: expected a date like 2026-01-31 (years "
                                  f"{EARLIEST.year} to {LATEST.year - 1}), got {account.since!r}")
        addresses = settings.mail.crm_addresses if account.role == "crm" else settings.mail.support_addresses
        if not addresses:
            raise ConfigError(f"config: {label} role = {account.role!r} needs at least one address in "
                              f"[mail] {account.role}_addresses")


def load_settings(path: str | os.PathLike[str] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (``path``, else ``$CRM_INBOX_CONFIG``, else defaults) plus env overrides."""
    environ = os.environ if environ is None else environ
    path = path or environ.get(CONFIG_ENV) or None
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config: file not found: {p}") from None
        except OSError as exc:
            raise ConfigError(f"config: cannot read {p}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config: {p} is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {p} is not valid TOML: {exc}") from None
    return settings_from_mapping(data, environ)


def settings_from_mapping(data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    merged: dict[str, dict[str, Any]] = {}
    for section, values in data.items():
        if section not in _SECTION_TYPES:
            raise ConfigError(f"config: unknown section [{section}]")
        if not isinstance(values, dict):
            raise ConfigError(f"config: [{section}] must be a table")
        merged[section] = dict(values)
    for section, values in _env_overrides(environ or {}).items():
        merged.setdefault(section, {}).update(values)
    settings = Settings(**{name: _build_section(name, merged.get(name, {})) for name in _SECTION_TYPES})
    _validate(settings)
    return settings


def replace(settings: Settings, **sections: Mapping[str, Any]) -> Settings:
    """A copy of ``settings`` with some keys changed, e.g. ``replace(s, smtp={"port": 0})`` (tests, demo)."""
    changed = {name: dataclasses.replace(getattr(settings, name), **values) for name, values in sections.items()}
    return dataclasses.replace(settings, **changed)


_SECRET_KEY = re.compile(r"(secret|password|token)(_key|_file|_env)?$")
# Up to the last "@" before the query: an unencoded "@" or "/" in a password must not leave part of it shown.
_URL_PASSWORD = re.compile(r"(://[^:/@?#]*:)[^?#]*@")
_URL_SECRET_PARAM = re.compile(r"([?&;](?:\w*password|passwd|pass|secret|token|key)=)[^&;#]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``url`` fit to show: the password of ``user:pass@`` and secret query parameters (``?password=``) as ***."""
    return _URL_SECRET_PARAM.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))


def public_view(settings: Settings) -> dict[str, dict[str, Any]]:
    """The settings in force, section by section, for the admin's settings page: secrets show only whether
    they are set, a database URL without its password."""

    def shown(key: str, value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: shown(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [shown(key, v) for v in value]
        if isinstance(value, str) and _SECRET_KEY.search(key) and not key.endswith(("_env", "_file")):
            return "(set)" if value else "(not set)"
        if isinstance(value, str) and key in ("url", "source_url"):
            return mask_url(value)
        return value

    return {name: shown(name, getattr(settings, name)) for name in _SECTION_TYPES}
