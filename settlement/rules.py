"""Pure settlement rules (no database, no HTTP): quarters, money, units, contract tariffs,
pricing an arrangement line over a period, the quarter overview, and reading the contract form.

Money is integer euro cents; exact amounts are :class:`~fractions.Fraction` and are rounded half
away from zero once per line, so a total is always the sum of the lines a reader sees.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from keerpunt.platform.errors import DomainError, InvalidInput
from keerpunt.platform.i18n import N_

# iJw unit codes (codelijst WMO757 "Eenheid"); their meaning is in UNITS below.
UNIT_CODES = ("01", "04", "14", "16", "82", "83", "84")

ONE_DAY = dt.timedelta(days=1)
MAX_TARIFF_CENTS = 100_000_000  # € 1.000.000 per unit: anything above is a typing error


# ---- errors ----


class InvalidQuarter(DomainError):
    message = N_("Kies een kwartaal zoals 2026K3.")


class InvalidAmount(DomainError):
    message = N_("Vul een bedrag in euro's in, zoals 120,00.")


class UnpriceableUnit(DomainError):
    """The contract's unit is not time, so weekly hours cannot give a volume (yet)."""

    status_code = 422
    message = N_(
        "Dit product kan nog niet uit uren per week worden berekend: "
        "het contract rekent niet in minuten of uren."
    )


# ---- periods and quarters ----


@dataclass(frozen=True, order=True)
class DateRange:
    """A run of whole days; ``end`` is inclusive (t/m)."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"period ends before it starts: {self.start}..{self.end}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def clip(self, other: DateRange) -> DateRange | None:
        """The days both periods share, or None."""
        start, end = max(self.start, other.start), min(self.end, other.end)
        return DateRange(start, end) if start <= end else None


@dataclass(frozen=True)
class Quarter:
    """A calendar quarter (kwartaal); ``end`` is its last day."""

    year: int
    q: int
    start: dt.date
    end: dt.date

    @classmethod
    def of(cls, year: int, q: int) -> Quarter:
        start = dt.date(year, 3 * q - 2, 1)
        after = dt.date(year + 1, 1, 1) if q == 4 else dt.date(year, 3 * q + 1, 1)
        return cls(year, q, start, after - ONE_DAY)

    @property
    def code(self) -> str:
        """As used in links: ``2026Q3``."""
        return f"{self.year}Q{self.q}"

    @property
    def period(self) -> DateRange:
        return DateRange(self.start, self.end)

    @property
    def next(self) -> Quarter:
        return Quarter.of(self.year + 1, 1) if self.q == 4 else Quarter.of(self.year, self.q + 1)

    @property
    def previous(self) -> Quarter:
        return Quarter.of(self.year - 1, 4) if self.q == 1 else Quarter.of(self.year, self.q - 1)


_QUARTER = re.compile(r"([12]\d{3})\s*-?\s*[QK]([1-4])", re.ASCII | re.IGNORECASE)


def parse_quarter(text: str) -> Quarter:
    """``2026Q3`` or the Dutch ``2026K3`` (case, spaces and a dash are forgiven)."""
    match = _QUARTER.fullmatch(text.strip())
    if match is None:
        raise InvalidQuarter()
    return Quarter.of(int(match[1]), int(match[2]))


def quarter_of(day: dt.date) -> Quarter:
    return Quarter.of(day.year, (day.month - 1) // 3 + 1)


# ---- money ----


def round_half_away_from_zero(value: Fraction) -> int:
    """Round to a whole cent; exactly half goes away from zero (0.5 -> 1, -2.5 -> -3)."""
    whole, rest = divmod(abs(value.numerator), value.denominator)
    if 2 * rest >= value.denominator:
        whole += 1
    return whole if value >= 0 else -whole


_WHOLE = re.compile(r"\d{1,12}", re.ASCII)
_ID = re.compile(r"\d{1,9}", re.ASCII)
_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+", re.ASCII)
_CENTS = re.compile(r"\d{0,2}", re.ASCII)


def parse_euros(text: str) -> int:
    """Euros as typed by a Dutch user ("120", "120,00", "1.234,56") as integer cents.

    A comma is the decimal sign and dots group thousands; with no comma, one dot followed by
    one or two digits is read as a decimal point ("1234.56"). No float touches the amount.
    """
    s = text.strip().removeprefix("€").replace(" ", "").replace("\u00a0", "")
    if "," in s:
        whole, _, frac = s.partition(",")
        if _THOUSANDS.fullmatch(whole):
            whole = whole.replace(".", "")
    elif _THOUSANDS.fullmatch(s):
        whole, frac = s.replace(".", ""), ""
    else:
        whole, _, frac = s.partition(".")
    if not _WHOLE.fullmatch(whole) or not _CENTS.fullmatch(frac):
        raise InvalidAmount()
    return int(whole) * 100 + int(frac.ljust(2, "0"))


# ---- units and contracts ----


@dataclass(frozen=True)
class UnitInfo:
    """An iJw unit (eenheid). ``minutes``: minutes in one unit, if weekly time can price it."""

    code: str
    label: str  # Dutch message id
    minutes: int | None


UNITS: Mapping[str, UnitInfo] = {
    u.code: u
    for u in (
        UnitInfo("01", N_("minuut"), 1),
        UnitInfo("04", N_("uur"), 60),
        UnitInfo("14", N_("etmaal"), None),
        UnitInfo("16", N_("dagdeel"), None),
        UnitInfo("82", N_("stuk (output)"), None),
        UnitInfo("83", N_("euro"), None),
        UnitInfo("84", N_("stuk (inzet)"), None),
    )
}
assert tuple(UNITS) == UNIT_CODES


@dataclass(frozen=True)
class ContractTerms:
    """What the pricing rules need of a contract (contracttarief)."""

    provider_id: int
    product_code: str
    unit: str
    tariff_cents: int
    valid_from: dt.date
    valid_to: dt.date | None
    description: str = ""

    @property
    def period(self) -> DateRange:
        return DateRange(self.valid_from, self.valid_to or dt.date.max)


def find_overlap(
    existing: Iterable[ContractTerms], valid_from: dt.date, valid_to: dt.date | None
) -> ContractTerms | None:
    """The first existing tariff whose period shares a day with the new one, if any."""
    new = DateRange(valid_from, valid_to or dt.date.max)
    return next((c for c in existing if c.period.clip(new) is not None), None)


# ---- pricing one line ----


class PricedLine(Protocol):
    """What pricing needs of an arrangement line (non-personal by design)."""

    @property
    def provider_id(self) -> int: ...
    @property
    def product_code(self) -> str: ...
    @property
    def minutes_per_week(self) -> int: ...
    @property
    def start_date(self) -> dt.date: ...
    @property
    def end_date(self) -> dt.date: ...


@dataclass(frozen=True)
class PricedPart:
    """The days of a line under one tariff. ``volume`` is in ``unit``; amounts are exact."""

    start: dt.date
    end: dt.date
    days: int
    unit: str
    tariff_cents: int
    volume: Fraction
    exact_cents: Fraction


@dataclass(frozen=True)
class LinePrice:
    """A line over a period: ``days`` it runs, split in ``parts`` per tariff and ``gaps``
    without one; ``amount_cents`` is the exact sum rounded once."""

    days: int
    parts: tuple[PricedPart, ...]
    gaps: tuple[DateRange, ...]
    exact_cents: Fraction
    amount_cents: int


def _span(line: PricedLine, period: DateRange) -> DateRange | None:
    if line.end_date < line.start_date:
        return None
    return DateRange(line.start_date, line.end_date).clip(period)


def price_line(
    line: PricedLine, contracts: Iterable[ContractTerms], period: DateRange
) -> LinePrice:
    """Price a line over ``period`` (e.g. a quarter) with the tariff valid on each day.

    Volume is minutes per week × days / 7, in the contract's unit. Days without a tariff are
    returned as gaps and cost nothing here; the caller must show them. A contract in a unit
    other than minutes or hours raises :class:`UnpriceableUnit`.
    """
    span = _span(line, period)
    if span is None:
        return LinePrice(0, (), (), Fraction(0), 0)
    mine = sorted(
        (
            c
            for c in contracts
            if c.provider_id == line.provider_id and c.product_code == line.product_code
        ),
        key=lambda c: c.valid_from,
    )
    parts: list[PricedPart] = []
    gaps: list[DateRange] = []
    cursor = span.start
    for contract in mine:
        covered = contract.period.clip(span)
        if covered is None:
            continue
        if covered.start < cursor:
            raise ValueError(f"overlapping tariffs for {line.provider_id}/{line.product_code}")
        if covered.start > cursor:
            gaps.append(DateRange(cursor, covered.start - ONE_DAY))
        unit = UNITS[contract.unit]
        if unit.minutes is None:
            raise UnpriceableUnit(product_code=line.product_code, unit=contract.unit)
        volume = Fraction(line.minutes_per_week * covered.days, 7 * unit.minutes)
        parts.append(
            PricedPart(
                start=covered.start,
                end=covered.end,
                days=covered.days,
                unit=contract.unit,
                tariff_cents=contract.tariff_cents,
                volume=volume,
                exact_cents=volume * contract.tariff_cents,
            )
        )
        cursor = covered.end + ONE_DAY
    if cursor <= span.end:
        gaps.append(DateRange(cursor, span.end))
    exact = sum((p.exact_cents for p in parts), Fraction(0))
    return LinePrice(span.days, tuple(parts), tuple(gaps), exact, round_half_away_from_zero(exact))


# ---- the quarter overview (view model, assembled without the database) ----


class SourceLine(PricedLine, Protocol):
    """An arrangement line of a fixed arrangement, as triage hands it to settlement."""

    @property
    def line_id(self) -> int: ...
    @property
    def case_pseudonym(self) -> str: ...
    @property
    def help_form(self) -> str: ...


@dataclass(frozen=True)
class ProviderInfo:
    id: int
    name: str
    agb_code: str | None


class ProblemKind(enum.StrEnum):
    NO_CONTRACT = "no_contract"  # days without a contract tariff
    UNIT = "unit"  # the tariff's unit cannot be priced from weekly hours


@dataclass(frozen=True)
class Problem:
    """Something finance must fix before the quarter adds up; days it covers cost € 0 here."""

    kind: ProblemKind
    provider_name: str
    case_pseudonym: str
    product_code: str
    start: dt.date
    end: dt.date
    unit: str | None = None


@dataclass(frozen=True)
class OverviewLine:
    line_id: int
    case_pseudonym: str
    product_code: str
    description: str
    help_form: str
    minutes_per_week: int
    days: int  # days of the line inside the quarter
    parts: tuple[PricedPart, ...]  # one per tariff
    amount_cents: int
    has_problem: bool


@dataclass(frozen=True)
class ProviderBlock:
    provider: ProviderInfo
    lines: tuple[OverviewLine, ...]
    total_cents: int


@dataclass(frozen=True)
class QuarterOverview:
    quarter: Quarter
    providers: tuple[ProviderBlock, ...]
    total_cents: int
    problems: tuple[Problem, ...]


def assemble_overview(
    quarter: Quarter,
    lines: Iterable[SourceLine],
    contracts: Sequence[ContractTerms],
    providers: Mapping[int, ProviderInfo],
) -> QuarterOverview:
    """Price every line over the quarter, group per provider, and list every problem."""
    descriptions = {
        (c.provider_id, c.product_code): c.description
        for c in sorted(contracts, key=lambda c: c.valid_from)
    }
    grouped: dict[int, list[OverviewLine]] = {}
    problems: list[Problem] = []
    for line in lines:
        span = _span(line, quarter.period)
        if span is None:
            continue
        provider = providers.get(line.provider_id) or ProviderInfo(
            line.provider_id, f"#{line.provider_id}", None
        )
        line_problems: list[Problem] = []
        try:
            price = price_line(line, contracts, quarter.period)
        except UnpriceableUnit as exc:
            unit = str(exc.params["unit"])
            price = LinePrice(span.days, (), (), Fraction(0), 0)
            line_problems.append(
                Problem(
                    ProblemKind.UNIT,
                    provider.name,
                    line.case_pseudonym,
                    line.product_code,
                    span.start,
                    span.end,
                    unit,
                )
            )
        for gap in price.gaps:
            line_problems.append(
                Problem(
                    ProblemKind.NO_CONTRACT,
                    provider.name,
                    line.case_pseudonym,
                    line.product_code,
                    gap.start,
                    gap.end,
                )
            )
        problems.extend(line_problems)
        grouped.setdefault(provider.id, []).append(
            OverviewLine(
                line_id=line.line_id,
                case_pseudonym=line.case_pseudonym,
                product_code=line.product_code,
                description=descriptions.get((line.provider_id, line.product_code), ""),
                help_form=line.help_form,
                minutes_per_week=line.minutes_per_week,
                days=price.days,
                parts=price.parts,
                amount_cents=price.amount_cents,
                has_problem=bool(line_problems),
            )
        )
    blocks = []
    for provider_id, block_lines in grouped.items():
        block_lines.sort(key=lambda x: (x.case_pseudonym, x.product_code, x.line_id))
        info = providers.get(provider_id) or ProviderInfo(provider_id, f"#{provider_id}", None)
        total = sum(x.amount_cents for x in block_lines)
        blocks.append(ProviderBlock(info, tuple(block_lines), total))
    blocks.sort(key=lambda b: (b.provider.name.casefold(), b.provider.id))
    problems.sort(key=lambda p: (p.provider_name.casefold(), p.case_pseudonym, p.start))
    return QuarterOverview(
        quarter=quarter,
        providers=tuple(blocks),
        total_cents=sum(b.total_cents for b in blocks),
        problems=tuple(problems),
    )


# ---- the contract form ----

CONTRACT_FIELDS = (
    "provider_id",
    "product_category",
    "product_code",
    "description",
    "unit",
    "tariff",
    "valid_from",
    "valid_to",
)
_CATEGORY = re.compile(r"\d{2}", re.ASCII)
_PRODUCT_CODE = re.compile(r"[0-9A-Z]{5}", re.ASCII)
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})", re.ASCII)
_DUTCH_DATE = re.compile(r"(\d{1,2})-(\d{1,2})-(\d{4})", re.ASCII)
BAD_DATE = N_("Vul een datum in, bijvoorbeeld 1-1-2026.")


@dataclass(frozen=True)
class ContractDraft:
    """A new contract tariff, typed but not yet checked against the database."""

    provider_id: int
    product_category: str
    product_code: str
    description: str
    unit: str
    tariff_cents: int
    valid_from: dt.date
    valid_to: dt.date | None


def parse_date(text: str) -> dt.date | None:
    """``2026-01-31`` (what a date field sends) or the Dutch ``31-1-2026``."""
    if m := _ISO_DATE.fullmatch(text):
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
    elif m := _DUTCH_DATE.fullmatch(text):
        d, mo, y = int(m[1]), int(m[2]), int(m[3])
    else:
        return None
    try:
        return dt.date(y, mo, d)
    except ValueError:
        return None


def check_contract_draft(draft: ContractDraft) -> dict[str, str]:
    """Field errors (Dutch message ids) of a draft; empty when it may be saved."""
    errors: dict[str, str] = {}
    if not _CATEGORY.fullmatch(draft.product_category):
        errors["product_category"] = N_("Vul een productcategorie van 2 cijfers in, zoals 45.")
    if not _PRODUCT_CODE.fullmatch(draft.product_code):
        errors["product_code"] = N_("Vul een productcode van 5 tekens in, zoals 45A52.")
    if not draft.description:
        errors["description"] = N_("Vul een omschrijving in.")
    elif len(draft.description) > 200:
        errors["description"] = N_("De omschrijving is te lang. Gebruik hoogstens 200 tekens.")
    if draft.unit not in UNITS:
        errors["unit"] = N_("Kies een eenheid.")
    if not 0 <= draft.tariff_cents <= MAX_TARIFF_CENTS:
        errors["tariff"] = N_("Dit bedrag is te hoog. Kijk of het goed is ingevuld.")
    if draft.valid_to is not None and draft.valid_to < draft.valid_from:
        errors["valid_to"] = N_("De einddatum ligt vóór de begindatum.")
    return errors


def read_contract_form(data: Mapping[str, str]) -> ContractDraft:
    """Read the add-contract form; raises :class:`InvalidInput` naming every bad field."""
    get = {name: data.get(name, "").strip() for name in CONTRACT_FIELDS}
    errors: dict[str, str] = {}
    provider_id = int(get["provider_id"]) if _ID.fullmatch(get["provider_id"]) else None
    if provider_id is None:
        errors["provider_id"] = N_("Kies een aanbieder.")
    try:
        tariff_cents: int | None = parse_euros(get["tariff"])
    except InvalidAmount as exc:
        tariff_cents = None
        errors["tariff"] = exc.message
    valid_from = parse_date(get["valid_from"])
    if valid_from is None:
        errors["valid_from"] = BAD_DATE
    valid_to = parse_date(get["valid_to"]) if get["valid_to"] else None
    if get["valid_to"] and valid_to is None:
        errors["valid_to"] = BAD_DATE
    draft = ContractDraft(
        provider_id=provider_id or 0,
        product_category=get["product_category"],
        product_code=get["product_code"].upper(),
        description=get["description"],
        unit=get["unit"],
        tariff_cents=tariff_cents or 0,
        valid_from=valid_from or dt.date.min,
        valid_to=valid_to,
    )
    for name, message in check_contract_draft(draft).items():
        errors.setdefault(name, message)
    if errors:
        raise InvalidInput(errors)
    return draft
