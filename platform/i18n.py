"""Translations and local time.

Message ids are the Dutch texts (Dutch is the default language, B1 level), so a missing
translation falls back to Dutch, never to an empty string. English comes from
``locale/en/LC_MESSAGES/messages.po``, read with Babel at start-up (no compile step).
Times are stored in UTC and shown in Europe/Amsterdam.
"""

from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date as _babel_format_date
from babel.dates import format_time as _babel_format_time
from babel.messages.pofile import read_po
from babel.numbers import format_currency

LOCALES = ("nl", "en")
DEFAULT_LOCALE = "nl"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def today() -> dt.date:
    """Today's date in the Netherlands: the day deadlines, quarters and tariffs count by."""
    return dt.datetime.now(AMSTERDAM).date()


_LOCALE_DIR = Path(__file__).resolve().parent / "locale"

current_locale: ContextVar[str] = ContextVar("current_locale", default=DEFAULT_LOCALE)


@cache
def catalog(locale: str) -> dict[str, str]:
    path = _LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        cat = read_po(fh, locale=locale)
    return {str(m.id): str(m.string) for m in cat if m.id and m.string and not m.fuzzy}


def N_(message: str) -> str:
    """Mark a Dutch message id for extraction; it is translated where it is shown."""
    return message


def gettext(message: str) -> str:
    locale = current_locale.get()
    if locale == DEFAULT_LOCALE:
        return message
    return catalog(locale).get(message, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return gettext(singular if n == 1 else plural)


def negotiate(accept_language: str | None, preferred: str | None = None) -> str:
    if preferred is not None and preferred in LOCALES:
        return preferred
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LOCALES:
            return tag
    return DEFAULT_LOCALE


def local_datetime(value: dt.datetime | None) -> str:
    """Date and time in Amsterdam, as people write it: "23 november 2026 09:30"."""
    if value is None:
        return ""
    local = value.astimezone(AMSTERDAM)
    locale = current_locale.get()
    return (
        f"{_babel_format_date(local, 'long', locale=locale)} "
        f"{_babel_format_time(local, 'short', locale=locale)}"
    )


def local_date(value: dt.date | dt.datetime | None, fmt: str = "long") -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.astimezone(AMSTERDAM).date()
    return _babel_format_date(value, fmt, locale=current_locale.get())


def money(cents: int) -> str:
    """Integer cents as euros in the viewer's locale (no float ever touches the amount)."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    from decimal import Decimal

    return format_currency(Decimal(f"{sign}{euros}.{rest:02d}"), "EUR", locale=current_locale.get())
