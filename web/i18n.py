"""The interface language: German or English as the browser asks (a German browser gets German), or as the
person chose with ``?lang=de``/``?lang=en`` (kept in the session). Times in the office's time zone."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from flask import Flask, request, session
from flask_babel import Babel, format_datetime, get_locale

LANGUAGES = ("en", "de")
TIME_FORMAT = "EEE dd.MM.yyyy HH:mm"  # "Mo. 23.11.2026 09:00" / "Mon 23.11.2026 09:00"


def N_(text: str) -> str:
    """Mark a text for translation where it is defined; it is translated where it is shown."""
    return text


def select_locale() -> str:
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    return request.accept_languages.best_match(LANGUAGES) or "en"


def local_time(value: datetime | None) -> str:
    return format_datetime(value, TIME_FORMAT) if value else ""


def init_app(app: Flask, timezone: str) -> None:
    app.config["BABEL_DEFAULT_TIMEZONE"] = timezone
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(Path(__file__).parent / "translations")
    Babel(app, locale_selector=select_locale)
    # <html lang> as the page is written, so screen readers and hyphenation read it in that language.
    app.jinja_env.globals["page_language"] = lambda: str(get_locale() or "en")

    @app.before_request
    def remember_language() -> None:
        wanted = request.args.get("lang")
        if wanted in LANGUAGES:
            session["lang"] = wanted
