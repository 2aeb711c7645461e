"""What the services' typed inputs share: ``NOT_GIVEN``, a field left as it is.

Each field of an input (``contacts.inputs``, ``reminders.inputs``) is either given (a value; None clears it)
or ``NOT_GIVEN``: a PATCH names only what it changes, and a form of an older page may lack a field. It lives
here, below the capabilities, so that each may use it without importing another.
"""

from __future__ import annotations

import enum
from typing import Final


class NotGiven(enum.Enum):
    NOT_GIVEN = "not given"

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven.NOT_GIVEN
