"""The pages' one answer to a request body over its limit (Werkzeug's 413, raised before the body is read):
instead of the bare error page, the page the form was on with a clear message.

A blueprint has one handler per error, so upload routes do not register their own: they name their answer
with ``@answers(endpoint, ...)`` (the document upload shows the person's page, the import its list). Any other
page route goes back to the page that sent the form with a flash message naming the limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from flask import flash, redirect, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from web.auth import current_user
from web.pages.blueprint import pages
from web.pages.filters import format_size

log = logging.getLogger(__name__)

Answer = TypeVar("Answer", bound=Callable[[RequestEntityTooLarge], ResponseReturnValue])
_ANSWERS: dict[str, Callable[[RequestEntityTooLarge], ResponseReturnValue]] = {}


def answers(*endpoints: str) -> Callable[[Answer], Answer]:
    """Register the decorated function as the answer to a too large body on these endpoints."""
    def register(answer: Answer) -> Answer:
        for endpoint in endpoints:
            _ANSWERS[endpoint] = answer
        return answer
    return register


@pages.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> ResponseReturnValue:
    answer = _ANSWERS.get(request.endpoint or "", _back)
    try:
        return answer(exc)
    except HTTPException as refused:  # not logged in, read-only, no such record: that answer instead
        return refused  # (returned, not raised: an error raised inside an error handler would become a 500)


def _back(exc: RequestEntityTooLarge) -> ResponseReturnValue:
    """Back to the page that sent the form (only a page of ours), with the limit in a flash message."""
    referrer = urlsplit(request.referrer or "")
    if current_user() is None or referrer.netloc != request.host or not referrer.path.startswith("/"):
        return exc
    limit = request.max_content_length
    log.info("%s %s refused: the body is larger than %s bytes", request.method, request.path, limit)
    flash(_("Nothing was saved: what you sent is larger than the %(size)s this form takes.",
            size=format_size(limit or 0)))
    return redirect(referrer.path + (f"?{referrer.query}" if referrer.query else ""), 303)
