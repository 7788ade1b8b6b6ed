"""Deadlines of a case (termijnen), derived from its history and dates: plain functions.

Every number is a default a region can change (:class:`DeadlineRules`), and the public
holidays are data (:data:`DUTCH_HOLIDAYS`), not code. Sources: the arrangement runs 9 months
(seed 003 §3.7); care starts within 5 working days (seed 001); the RET takes a case that is
not solved at the tables within 3–4 weeks, or a youth not home 28 days after a crisis
placement (seed 000); a 12th or 16th birthday during the case calls for new consent
(Jeugdwet, DOMAIN.md "Consent").
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache

from keerpunt.consent.service import age_on
from keerpunt.platform.i18n import N_
from keerpunt.triage.lifecycle import Status

__all__ = [
    "DEFAULT_RULES",
    "DUTCH_HOLIDAYS",
    "CaseFacts",
    "DatedStep",
    "Deadline",
    "DeadlineRules",
    "Holiday",
    "add_months",
    "add_working_days",
    "birthday",
    "deadlines",
    "easter",
    "holidays_in",
    "is_working_day",
]


@dataclass(frozen=True)
class Holiday:
    """A public holiday: a fixed day (``month``/``day``) or a day relative to Easter Sunday.
    ``if_sunday``: days to move a fixed holiday that falls on a Sunday (Koningsdag: -1)."""

    name: str
    month: int = 0
    day: int = 0
    easter_offset: int | None = None
    if_sunday: int = 0


# The general holidays of the Algemene termijnenwet (art. 3): Nieuwjaarsdag, 2e Paasdag,
# Koningsdag, 5 mei, Hemelvaartsdag, 2e Pinksterdag, both Christmas days. Easter Sunday and
# Whit Sunday are Sundays anyway. A region whose contracts also count Goede Vrijdag adds it.
DUTCH_HOLIDAYS: tuple[Holiday, ...] = (
    Holiday("Nieuwjaarsdag", 1, 1),
    Holiday("Tweede Paasdag", easter_offset=1),
    Holiday("Koningsdag", 4, 27, if_sunday=-1),
    Holiday("Bevrijdingsdag", 5, 5),
    Holiday("Hemelvaartsdag", easter_offset=39),
    Holiday("Tweede Pinksterdag", easter_offset=50),
    Holiday("Eerste Kerstdag", 12, 25),
    Holiday("Tweede Kerstdag", 12, 26),
)


@cache
def easter(year: int) -> dt.date:
    """Easter Sunday in the Gregorian calendar (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    lx = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * lx) // 451
    month, day = divmod(h + lx - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def holidays_in(year: int, table: Iterable[Holiday] = DUTCH_HOLIDAYS) -> dict[dt.date, str]:
    """The holidays of one year by date."""
    out: dict[dt.date, str] = {}
    for h in table:
        if h.easter_offset is not None:
            day = easter(year) + dt.timedelta(days=h.easter_offset)
        else:
            day = dt.date(year, h.month, h.day)
            if day.weekday() == 6 and h.if_sunday:
                day += dt.timedelta(days=h.if_sunday)
        out[day] = h.name
    return out


@cache
def _holiday_set(year: int, table: tuple[Holiday, ...]) -> frozenset[dt.date]:
    return frozenset(holidays_in(year, table))


def is_working_day(day: dt.date, table: tuple[Holiday, ...] = DUTCH_HOLIDAYS) -> bool:
    """Monday to Friday and not a public holiday."""
    return day.weekday() < 5 and day not in _holiday_set(day.year, table)


def add_working_days(
    start: dt.date, days: int, table: tuple[Holiday, ...] = DUTCH_HOLIDAYS
) -> dt.date:
    """The ``days``-th working day after ``start`` (``start`` itself does not count)."""
    day, left = start, days
    while left > 0:
        day += dt.timedelta(days=1)
        if is_working_day(day, table):
            left -= 1
    return day


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later; the month's last day when it is shorter (31 Jan → 28 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def birthday(birth: dt.date, age: int) -> dt.date:
    """The first day on which consent counts the youth as ``age`` (``consent.service.age_on``,
    so both agree; born on 29 February, that is 1 March in a year without 29 February)."""
    year = birth.year + age
    day = dt.date(year, birth.month, min(birth.day, calendar.monthrange(year, birth.month)[1]))
    while age_on(birth, day) < age:
        day += dt.timedelta(days=1)
    return day


@dataclass(frozen=True)
class DeadlineRules:
    """The numbers behind the deadlines; defaults from the seeds, changeable per region."""

    arrangement_months: int = 9
    extension_months: int = 3
    care_start_working_days: int = 5
    ret_tables_warn_days: int = 21  # 3 weeks: warn
    ret_tables_days: int = 28  # 4 weeks: to the RET
    ret_crisis_days: int = 28
    consent_ages: tuple[int, ...] = (12, 16)
    consent_early_days: int = 28  # a consent this long before the birthday counts
    consent_horizon_months: int = 12  # birthdays further ahead are not shown yet
    holidays: tuple[Holiday, ...] = DUTCH_HOLIDAYS


DEFAULT_RULES = DeadlineRules()


@dataclass(frozen=True)
class DatedStep:
    source: Status
    target: Status
    on: dt.date  # local date (Europe/Amsterdam)


@dataclass(frozen=True)
class CaseFacts:
    """What the deadlines are derived from; dates are local (Europe/Amsterdam)."""

    registered_on: dt.date
    status: Status
    steps: tuple[DatedStep, ...] = ()
    birth_date: dt.date | None = None  # only when the viewer may see it
    sessions: tuple[dt.date, ...] = ()  # days of sessions not yet closed
    consents_on: tuple[dt.date, ...] = ()  # days a consent was recorded


@dataclass(frozen=True)
class Deadline:
    kind: str  # care_start | review | extension_review | ret_tables | ret_crisis | consent
    label: str  # Dutch message id; may use %(age)s
    due: dt.date
    since: dt.date  # the day the clock started
    warn_from: dt.date | None = None
    params: dict[str, object] = field(default_factory=dict)

    def overdue(self, today: dt.date) -> bool:
        return today > self.due

    def days_left(self, today: dt.date) -> int:
        return (self.due - today).days


def _last_into(steps: Sequence[DatedStep], status: Status) -> dt.date | None:
    for step in reversed(steps):
        if step.target is status:
            return step.on
    return None


def _first_into(steps: Sequence[DatedStep], status: Status) -> dt.date | None:
    return next((s.on for s in steps if s.target is status), None)


_BEFORE_ARRANGEMENT = {
    Status.REGISTERED,
    Status.CONSENT_PENDING,
    Status.SCHEDULED,
    Status.IN_TRIAGE,
}


def deadlines(
    facts: CaseFacts, today: dt.date, rules: DeadlineRules = DEFAULT_RULES
) -> list[Deadline]:
    """The open deadlines of a case, earliest first (a closed case has none)."""
    if facts.status is Status.CLOSED:
        return []
    out: list[Deadline] = []
    s, steps = facts.status, facts.steps
    if s in _BEFORE_ARRANGEMENT:
        since = facts.registered_on
        out.append(
            Deadline(
                "ret_tables",
                N_("Nog geen arrangement: na %(days)s dagen aan tafel gaat de casus naar het RET"),
                since + dt.timedelta(days=rules.ret_tables_days),
                since,
                warn_from=since + dt.timedelta(days=rules.ret_tables_warn_days),
                params={"days": rules.ret_tables_days},
            )
        )
    if s is Status.ARRANGEMENT_AGREED:
        since = _last_into(steps, Status.ARRANGEMENT_AGREED) or facts.registered_on
        out.append(
            Deadline(
                "care_start",
                N_("De hulp start binnen %(days)s werkdagen na de toewijzing"),
                add_working_days(since, rules.care_start_working_days, rules.holidays),
                since,
                params={"days": rules.care_start_working_days},
            )
        )
    if s is Status.RUNNING:
        since = _first_into(steps, Status.RUNNING) or facts.registered_on
        out.append(
            Deadline(
                "review",
                N_("Evaluatie na %(months)s maanden: verlengen, afschalen of afsluiten"),
                add_months(since, rules.arrangement_months),
                since,
                params={"months": rules.arrangement_months},
            )
        )
    if s is Status.EXTENDED:
        since = _last_into(steps, Status.EXTENDED) or facts.registered_on
        out.append(
            Deadline(
                "extension_review",
                N_("Evaluatie van de verlenging: nog langer, afschalen of afsluiten"),
                add_months(since, rules.extension_months),
                since,
            )
        )
    if s is Status.CRISIS_PAUSE:
        since = _last_into(steps, Status.CRISIS_PAUSE) or facts.registered_on
        out.append(
            Deadline(
                "ret_crisis",
                N_(
                    "Nog niet thuis %(days)s dagen na de crisisplaatsing: de casus gaat naar "
                    "het RET"
                ),
                since + dt.timedelta(days=rules.ret_crisis_days),
                since,
                params={"days": rules.ret_crisis_days},
            )
        )
    out.extend(_consent_deadlines(facts, today, rules))
    return sorted(out, key=lambda d: (d.due, d.kind))


def _consent_deadlines(facts: CaseFacts, today: dt.date, rules: DeadlineRules) -> list[Deadline]:
    """A 12th or 16th birthday after registration: new consent (the youth's own, from 12;
    the youth alone, from 16) before the case is discussed again, at the latest the first
    session on or after the birthday; without a planned session, the birthday itself."""
    if facts.birth_date is None:
        return []
    out = []
    horizon = add_months(today, rules.consent_horizon_months)
    for age in rules.consent_ages:
        day = birthday(facts.birth_date, age)
        if not (facts.registered_on < day <= horizon):
            continue
        early = day - dt.timedelta(days=rules.consent_early_days)
        if any(c >= early for c in facts.consents_on):
            continue
        later = sorted(x for x in facts.sessions if x >= day)
        out.append(
            Deadline(
                "consent",
                N_("Nieuwe toestemming vragen: de jeugdige wordt %(age)s"),
                later[0] if later else day,
                day,
                warn_from=early,
                params={"age": age},
            )
        )
    return out
