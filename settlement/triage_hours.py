"""Triage-team time (verrekening inzet triageleden): pure rules.

The triage itself has no allocation (seed 003 §6.1): the penvoerder reimburses each seconding
provider for the hours its experts spent on triage sessions, at the rate of their discipline,
and accounts for it against the year's triage budget. One *line* is one expert's confirmed time
at one session, priced at the rate valid on the session's day and rounded to the cent once,
half away from zero; every total is a sum of lines.

Rates and budgets are data with a validity period / year, so indexation is a new row, never an
edit, and an old quarter keeps its price.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Protocol

from keerpunt.settlement.rules import round_half_away_from_zero

__all__ = [
    "DISCIPLINE_RATES",
    "TRIAGE_BUDGETS",
    "BudgetStatus",
    "DisciplineHours",
    "DisciplineRate",
    "ProviderHours",
    "TeamTimeLine",
    "TriageBudget",
    "TriageHours",
    "Unpriced",
    "budget_for",
    "budget_status",
    "hours_text",
    "line_amount",
    "price_team_time",
    "rate_on",
]


@dataclass(frozen=True)
class DisciplineRate:
    """Hourly rate of a discipline in cents, valid from ``valid_from`` to ``valid_to``
    (inclusive; None: until further notice)."""

    discipline: str
    cents_per_hour: int
    valid_from: dt.date
    valid_to: dt.date | None = None

    def covers(self, day: dt.date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


_PILOT = dt.date(2023, 1, 1)  # rates of the new purchasing of region IJsselland 2023 (seed 003)

# DOMAIN.md "Settlement": the discipline rates per hour. Sociaal domein / schulden has no rate
# in the seed: its hours are listed as "no rate" until one is agreed.
DISCIPLINE_RATES: tuple[DisciplineRate, ...] = (
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
TRIAGE_BUDGETS: tuple[TriageBudget, ...] = tuple(
    TriageBudget("IJsselland", year, 110_000_00) for year in range(2023, 2028)
)


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


def price_team_time(
    lines: Iterable[TeamTimeLine], rates: Sequence[DisciplineRate] = DISCIPLINE_RATES
) -> TriageHours:
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


def budget_for(
    budgets: Sequence[TriageBudget], region: str | None, year: int
) -> TriageBudget | None:
    """The triage budget of ``region`` for ``year``, if one is set."""
    key = (region or "").strip().casefold()
    return next((b for b in budgets if b.region.casefold() == key and b.year == year), None)


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
