"""Triage-team time (verrekening inzet triageleden): pure rules.

The triage itself has no allocation (seed 003 §6.1): the penvoerder reimburses each seconding
provider for the hours its experts spent on triage sessions, at the rate of their discipline,
and accounts for it against the year's triage budget. One *line* is one expert's confirmed time
at one session, priced at the rate valid on the session's day and rounded to the cent once,
half away from zero; every total is a sum of lines.

Rates and budgets are data the penvoerder's finance staff keep per region (tables
``discipline_rate`` and ``triage_budget``, :mod:`~keerpunt.settlement.triage_rates`): indexation
is a new rate from a date, which ends the running one the day before, never an edit of a price.
A rate may not start in a quarter that is already closed (afgesloten), so a closed quarter keeps
the price it was settled at; :func:`plan_new_rate` holds that rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Protocol

from keerpunt.platform.errors import InvalidInput
from keerpunt.platform.i18n import N_
from keerpunt.platform.models import Discipline
from keerpunt.settlement.rules import (
    BAD_DATE,
    MAX_TARIFF_CENTS,
    ONE_DAY,
    InvalidAmount,
    parse_date,
    parse_euros,
    round_half_away_from_zero,
)

__all__ = [
    "BUDGET_FIELDS",
    "PILOT_BUDGETS",
    "PILOT_RATES",
    "PILOT_REGION",
    "RATE_FIELDS",
    "BudgetDraft",
    "BudgetStatus",
    "DisciplineHours",
    "DisciplineRate",
    "ProviderHours",
    "RateChange",
    "RateRemoval",
    "TeamTimeLine",
    "TriageBudget",
    "TriageHours",
    "Unpriced",
    "budget_status",
    "check_budget_year",
    "hours_text",
    "line_amount",
    "may_remove",
    "plan_new_rate",
    "plan_rate_removal",
    "price_team_time",
    "rate_on",
    "read_budget_form",
    "read_rate_form",
    "region_key",
]


@dataclass(frozen=True)
class DisciplineRate:
    """Hourly rate of a discipline in cents, valid from ``valid_from`` to ``valid_to``
    (inclusive; None: until further notice)."""

    discipline: str
    cents_per_hour: int
    valid_from: dt.date
    valid_to: dt.date | None = None
    id: int | None = None  # the row, once stored

    def covers(self, day: dt.date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


_PILOT = dt.date(2023, 1, 1)  # rates of the new purchasing of region IJsselland 2023 (seed 003)
PILOT_REGION = "IJsselland"

# The values of the pilot (DOMAIN.md "Settlement"), which the migration that made the tables
# seeded for region IJsselland (its own frozen copy) and the demo loads; pricing reads the
# tables, never these. Sociaal domein / schulden has no rate in the seed: its hours are listed
# as "no rate" until finance agrees one.
PILOT_RATES: tuple[DisciplineRate, ...] = (
    DisciplineRate("ervaringsdeskundige", 75_00, _PILOT),
    DisciplineRate("onderwijsconsulent", 100_00, _PILOT),
    DisciplineRate("regiebehandelaar", 140_00, _PILOT),
    DisciplineRate("systeembehandelaar", 120_00, _PILOT),
    DisciplineRate("gezinsbehandelaar", 120_00, _PILOT),
    DisciplineRate("gedragswetenschapper", 120_00, _PILOT),
)


@dataclass(frozen=True)
class TriageBudget:
    """The triage-team budget of a region for one pilot year, in cents."""

    region: str
    year: int
    cents: int


# Seed 003 §6.5: € 110.000 per pilot year for the triage team.
PILOT_BUDGETS: tuple[TriageBudget, ...] = tuple(
    TriageBudget(PILOT_REGION, year, 110_000_00) for year in range(2023, 2028)
)


def region_key(region: str | None) -> str:
    """The region as rates and budgets are kept under: the penvoerder's region, trimmed
    (empty when it has none)."""
    return (region or "").strip()


class TeamTimeLine(Protocol):
    """One expert's confirmed time at one session (triage.service.TeamTime)."""

    @property
    def day(self) -> dt.date: ...
    @property
    def provider_id(self) -> int: ...
    @property
    def provider_name(self) -> str: ...
    @property
    def discipline(self) -> str: ...
    @property
    def minutes(self) -> int: ...


def hours_text(minutes: int) -> str:
    """Minutes as hours in the viewer's language ("3,5" in Dutch), at most two decimals and
    without thousands separators (so a spreadsheet reads it as one number)."""
    from babel.numbers import format_decimal

    from keerpunt.platform.i18n import current_locale

    hours = (Decimal(minutes) / 60).quantize(Decimal("0.01"))
    return format_decimal(hours, format="0.##", locale=current_locale.get())


def rate_on(
    rates: Sequence[DisciplineRate], discipline: str, day: dt.date
) -> DisciplineRate | None:
    """The rate of ``discipline`` valid on ``day``; the latest start wins if two overlap."""
    valid = [r for r in rates if r.discipline == discipline and r.covers(day)]
    return max(valid, key=lambda r: r.valid_from) if valid else None


def line_amount(minutes: int, cents_per_hour: int) -> int:
    """Minutes at an hourly rate, in cents, rounded half away from zero (once, per line)."""
    return round_half_away_from_zero(Fraction(minutes * cents_per_hour, 60))


@dataclass(frozen=True)
class DisciplineHours:
    """A provider's time in one discipline at one rate; ``amount_cents`` is the sum of the
    rounded lines (so it may differ by a cent from hours × rate)."""

    discipline: str
    cents_per_hour: int | None  # None: no rate valid (listed as a problem, € 0)
    minutes: int
    lines: int
    amount_cents: int

    @property
    def hours(self) -> str:
        return hours_text(self.minutes)


@dataclass(frozen=True)
class ProviderHours:
    provider_id: int
    provider_name: str
    disciplines: tuple[DisciplineHours, ...]

    @property
    def minutes(self) -> int:
        return sum(d.minutes for d in self.disciplines)

    @property
    def amount_cents(self) -> int:
        return sum(d.amount_cents for d in self.disciplines)

    @property
    def hours(self) -> str:
        return hours_text(self.minutes)


@dataclass(frozen=True)
class Unpriced:
    """Time without a valid rate on the session day: finance agrees a rate first."""

    provider_name: str
    discipline: str
    day: dt.date
    minutes: int


@dataclass(frozen=True)
class TriageHours:
    providers: tuple[ProviderHours, ...]
    unpriced: tuple[Unpriced, ...]

    @property
    def minutes(self) -> int:
        return sum(p.minutes for p in self.providers)

    @property
    def amount_cents(self) -> int:
        return sum(p.amount_cents for p in self.providers)

    @property
    def hours(self) -> str:
        return hours_text(self.minutes)

    def minutes_by_discipline(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.providers:
            for d in p.disciplines:
                out[d.discipline] = out.get(d.discipline, 0) + d.minutes
        return dict(sorted(out.items()))


def price_team_time(lines: Iterable[TeamTimeLine], rates: Sequence[DisciplineRate]) -> TriageHours:
    """Price every line at its discipline's rate on its day and group per provider and
    discipline (and rate, when indexation changed it within the period)."""
    groups: dict[tuple[int, str, int | None], list[int]] = {}  # -> [minutes, lines, cents]
    names: dict[int, str] = {}
    unpriced: list[Unpriced] = []
    for line in lines:
        if line.minutes <= 0:
            continue
        names[line.provider_id] = line.provider_name
        rate = rate_on(rates, line.discipline, line.day)
        cents = rate.cents_per_hour if rate else None
        acc = groups.setdefault((line.provider_id, line.discipline, cents), [0, 0, 0])
        acc[0] += line.minutes
        acc[1] += 1
        acc[2] += line_amount(line.minutes, cents) if cents is not None else 0
        if rate is None:
            unpriced.append(Unpriced(line.provider_name, line.discipline, line.day, line.minutes))
    per_provider: dict[int, list[DisciplineHours]] = {}
    for (provider_id, discipline, cents), (minutes, count, amount) in groups.items():
        per_provider.setdefault(provider_id, []).append(
            DisciplineHours(discipline, cents, minutes, count, amount)
        )
    providers = tuple(
        sorted(
            (
                ProviderHours(
                    pid,
                    names[pid],
                    tuple(sorted(ds, key=lambda d: (d.discipline, d.cents_per_hour or 0))),
                )
                for pid, ds in per_provider.items()
            ),
            key=lambda p: (p.provider_name.casefold(), p.provider_id),
        )
    )
    unpriced.sort(key=lambda u: (u.provider_name.casefold(), u.discipline, u.day))
    return TriageHours(providers, tuple(unpriced))


@dataclass(frozen=True)
class BudgetStatus:
    """The year's budget against what is used so far (None: no budget set)."""

    budget_cents: int | None
    used_cents: int

    @property
    def left_cents(self) -> int | None:
        return None if self.budget_cents is None else self.budget_cents - self.used_cents

    @property
    def over(self) -> bool:
        return self.budget_cents is not None and self.used_cents > self.budget_cents

    @property
    def used_percent(self) -> int | None:
        """Whole percent used, rounded half away from zero (for the summary text)."""
        if not self.budget_cents:
            return None
        return round_half_away_from_zero(Fraction(100 * self.used_cents, self.budget_cents))


def budget_status(budget: TriageBudget | None, used_cents: int) -> BudgetStatus:
    return BudgetStatus(budget.cents if budget else None, used_cents)


# ---- keeping rates and budgets (the penvoerder's finance staff) ----

RATE_FIELDS = ("discipline", "rate", "valid_from", "valid_to")
BUDGET_FIELDS = ("year", "budget")
MAX_BUDGET_CENTS = 100_000_000_00  # € 100 miljoen a year: anything above is a typing error
FIRST_YEAR, LAST_YEAR = 2000, 2100

NO_DISCIPLINE = N_("Kies een discipline.")
NEGATIVE = N_("Een bedrag kan niet negatief zijn. Vul een bedrag in zoals 120,00.")
TOO_HIGH = N_("Dit bedrag is te hoog. Kijk of het goed is ingevuld.")
END_BEFORE_START = N_("De einddatum ligt vóór de begindatum.")
BAD_YEAR = N_("Vul een jaartal in, bijvoorbeeld 2028.")
RATE_OVERLAP = N_(
    "Er is al een tarief voor deze discipline in deze periode. Kies een andere begindatum, "
    "of een einddatum vóór het volgende tarief."
)
RATE_IN_CLOSED = N_(
    "Deze datum valt in een kwartaal dat al is afgesloten. Een nieuw tarief kan pas beginnen "
    "na het laatste afgesloten kwartaal. Kies een latere datum."
)
RATE_USED_IN_CLOSED = N_(
    "Dit tarief geldt in een kwartaal dat al is afgesloten. Het kan niet meer weg."
)
YEAR_CLOSED = N_(
    "Alle kwartalen van dit jaar zijn al afgesloten. Het budget van dit jaar kan niet meer "
    "veranderen."
)


@dataclass(frozen=True)
class BudgetDraft:
    year: int
    cents: int


def _amount(text: str, limit: int, errors: dict[str, str], name: str) -> int:
    if text.lstrip().startswith(("-", "\u2212")):
        errors[name] = NEGATIVE
        return 0
    try:
        cents = parse_euros(text)
    except InvalidAmount as exc:
        errors[name] = exc.message
        return 0
    if cents > limit:
        errors[name] = TOO_HIGH
    return cents


def read_rate_form(data: Mapping[str, str]) -> DisciplineRate:
    """Read the new-rate form (discipline, euros per hour, first day, optional last day);
    raises :class:`InvalidInput` naming every bad field."""
    get = {name: data.get(name, "").strip() for name in RATE_FIELDS}
    errors: dict[str, str] = {}
    if get["discipline"] not in set(Discipline):
        errors["discipline"] = NO_DISCIPLINE
    cents = _amount(get["rate"], MAX_TARIFF_CENTS, errors, "rate")
    valid_from = parse_date(get["valid_from"])
    if valid_from is None:
        errors["valid_from"] = BAD_DATE
    valid_to = parse_date(get["valid_to"]) if get["valid_to"] else None
    if get["valid_to"] and valid_to is None:
        errors["valid_to"] = BAD_DATE
    elif valid_from and valid_to and valid_to < valid_from:
        errors["valid_to"] = END_BEFORE_START
    if errors:
        raise InvalidInput(errors)
    assert valid_from is not None
    return DisciplineRate(get["discipline"], cents, valid_from, valid_to)


def read_budget_form(data: Mapping[str, str]) -> BudgetDraft:
    """Read the year-budget form (year, euros); raises :class:`InvalidInput`."""
    year_text = data.get("year", "").strip()
    errors: dict[str, str] = {}
    year = int(year_text) if year_text.isascii() and year_text.isdecimal() else 0
    if not FIRST_YEAR <= year <= LAST_YEAR:
        errors["year"] = BAD_YEAR
    cents = _amount(data.get("budget", "").strip(), MAX_BUDGET_CENTS, errors, "budget")
    if errors:
        raise InvalidInput(errors)
    return BudgetDraft(year, cents)


@dataclass(frozen=True)
class RateChange:
    """What adding ``new`` does: store it, and give the running rate of the discipline
    (``ends``, if any) the day before as its last day."""

    new: DisciplineRate
    ends: DisciplineRate | None


def plan_new_rate(
    existing: Sequence[DisciplineRate], new: DisciplineRate, closed_until: dt.date | None
) -> RateChange:
    """Indexation (indexering) of a discipline rate: a new rate from a date. The rate without
    an end date that started before it ends the day before; any other rate of the discipline
    sharing a day with the new period is refused, and so is a start on or before the last
    day of the last closed quarter (that quarter keeps its price)."""
    if closed_until is not None and new.valid_from <= closed_until:
        raise InvalidInput({"valid_from": RATE_IN_CLOSED})
    same = [r for r in existing if r.discipline == new.discipline]
    ends = next(
        (r for r in same if r.valid_to is None and r.valid_from < new.valid_from),
        None,
    )
    last = new.valid_to or dt.date.max
    for r in same:
        r_to = (new.valid_from - ONE_DAY) if r is ends else (r.valid_to or dt.date.max)
        if r.valid_from <= last and new.valid_from <= r_to:
            raise InvalidInput({"valid_from": RATE_OVERLAP})
    return RateChange(new, ends)


@dataclass(frozen=True)
class RateRemoval:
    """What removing ``removed`` does: the rate of the discipline that ended the day before
    it (``runs_on``, if any) runs on to the removed rate's last day."""

    removed: DisciplineRate
    runs_on: DisciplineRate | None


def plan_rate_removal(
    existing: Sequence[DisciplineRate], removed: DisciplineRate, closed_until: dt.date | None
) -> RateRemoval:
    """A rate typed wrongly may be taken away (and added again correctly) as long as it
    starts after the last closed quarter; the rate before it, when it ended the day before,
    then runs on as if the removed one was never added."""
    if not may_remove(removed, closed_until):
        raise InvalidInput({"remove": RATE_USED_IN_CLOSED})
    runs_on = next(
        (
            r
            for r in existing
            if r.discipline == removed.discipline
            and r.id != removed.id
            and r.valid_to == removed.valid_from - ONE_DAY
        ),
        None,
    )
    return RateRemoval(removed, runs_on)


def may_remove(rate: DisciplineRate, closed_until: dt.date | None) -> bool:
    return closed_until is None or rate.valid_from > closed_until


def check_budget_year(year: int, closed_until: dt.date | None) -> None:
    """A year's triage budget may be set or changed until every quarter of the year is
    closed; after that the year's figures stand."""
    if closed_until is not None and dt.date(year, 12, 31) <= closed_until:
        raise InvalidInput({"year": YEAR_CLOSED})
