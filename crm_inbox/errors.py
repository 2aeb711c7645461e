"""The domain's errors, in one place: what services raise and the edges translate (a 4xx, a CLI line).

Every error names what is wrong in words a person can act on; ``field`` names the input it is about."""

from __future__ import annotations

from crm_inbox.time_range import EARLIEST, LATEST


class ValidationError(ValueError):
    """Bad input from a person or client; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Conflict(Exception):
    """The change clashes with existing data (e.g. a domain that belongs to another company)."""


class NotFound(LookupError):
    """No record with that id or address."""


class StaffExists(Exception):
    """A staff user with that address exists already."""


class CallEventError(ValueError):
    """A malformed phone-system event; ``field`` names what is wrong (answered 400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DueOutOfRange(ValueError):
    """The words name a time, but one outside the range the CRM keeps ("in 10000 years")."""

    def __init__(self) -> None:
        super().__init__(f"must lie between the years {EARLIEST.year} and {LATEST.year - 1}")


class BadCursor(ValueError):
    """A timeline cursor that this service did not hand out."""


class Forbidden(PermissionError):
    """The acting user's role does not allow this (e.g. only an admin approves a large campaign)."""


class AnalyticsUnavailable(Exception):
    """The analytical store cannot be read: ``reason`` is "missing", "corrupt" or "locked" (reports say so;
    nothing operative depends on it)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"analytics store {reason}" + (f": {detail}" if detail else ""))
        self.reason = reason
        self.detail = detail
