"""Pure rules for declaring delivered care (declareren): allocations, deliveries, acceptance
and corrections. No database, no HTTP.

A delivery line (geleverde zorg) is accepted only when every rule holds; a rejected line carries
one reason in words a finance clerk understands (a Dutch message id with its parameters).
Rules that add up over lines (volume per frequency, budget) are applied in one canonical order,
so the outcome never depends on the order in which lines arrived.

Money is integer cents; a line's amount is volume × tariff, rounded half away from zero once
(:func:`~keerpunt.settlement.rules.round_half_away_from_zero`); totals are sums of lines.
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from operator import attrgetter, itemgetter

from keerpunt.platform.errors import InvalidInput
from keerpunt.platform.i18n import N_, gettext
from keerpunt.settlement.rules import (
    BAD_DATE,
    UNITS,
    ContractTerms,
    DateRange,
    parse_date,
    round_half_away_from_zero,
)

__all__ = [
    "DELIVERY_FIELDS",
    "VARIANT_LABELS",
    "Accepted",
    "Allocation",
    "Delivery",
    "DeliveryDraft",
    "DeliveryFields",
    "Direction",
    "Frequency",
    "Margin",
    "MarginKind",
    "OutLine",
    "OutOfOrder",
    "PreviousLine",
    "RejectReason",
    "Rejection",
    "Settlement",
    "SubProviderAgreement",
    "Variant",
    "accept_lines",
    "check_allocation",
    "check_delivery_draft",
    "frequency_label",
    "outstanding",
    "read_delivery_form",
    "reason_of",
    "settle",
    "settle_lines",
    "settle_rows",
    "within_one_month",
]


class Variant(enum.StrEnum):
    """The iJw allocation variant (toewijzingsvariant)."""

    SPECIFIC = "specific"  # inspanningsgericht specifiek: category, code, volume, unit, frequency
    ASPECIFIC = "aspecific"  # inspanningsgericht aspecifiek: category only, budget optional
    GENERIC = "generic"  # generiek: no category, budget optional
    OUTPUT = "output"  # outputgericht: product code, pieces (82) or euros (83)


class Frequency(enum.StrEnum):
    """iJw frequency (codelijst WMO756): the period the allocated volume is per."""

    DAY = "1"
    WEEK = "2"
    MONTH = "4"
    TOTAL = "6"  # totaal binnen geldigheidsduur toewijzing


class MarginKind(enum.StrEnum):
    PERCENT = "percent"  # ``value`` in hundredths of a percent: 660 = 6,60 %
    FIXED = "fixed"  # ``value`` in cents per delivered unit


@dataclass(frozen=True)
class Margin:
    """What the kassier keeps of a sub-provider's line (opslag hoofdaannemer)."""

    kind: MarginKind
    value: int

    def of(self, amount_cents: int, volume: int) -> int:
        """The kassier's share of a line, in cents, rounded half away from zero once. A credit
        line (negative amount) gives exactly the negative share, so a credit undoes a debit.
        A fixed margin never exceeds the line itself."""
        if self.kind is MarginKind.PERCENT:
            return round_half_away_from_zero(Fraction(amount_cents * self.value, 10_000))
        share = min(abs(volume) * self.value, abs(amount_cents))
        return share if amount_cents >= 0 else -share


@dataclass(frozen=True)
class SubProviderAgreement:
    """A provider registered with a kassier to deliver under the kassier's allocations
    (onderaannemer), with the margin the kassier keeps; ``valid_to`` inclusive or open."""

    kassier_id: int
    provider_id: int
    margin: Margin
    valid_from: dt.date
    valid_to: dt.date | None = None

    def covers(self, period: DateRange) -> bool:
        return self.valid_from <= period.start and (
            self.valid_to is None or period.end <= self.valid_to
        )


@dataclass(frozen=True)
class Allocation:
    """A toewijzing issued by a municipality to ``provider_id`` (in the kassier model: the
    kassier). ``end`` is inclusive. Which fields are filled depends on ``variant``."""

    number: str
    case_id: int
    provider_id: int
    municipality_id: int
    variant: Variant
    start: dt.date
    end: dt.date
    product_category: str | None = None
    product_code: str | None = None
    volume: int | None = None
    unit: str | None = None
    frequency: Frequency | None = None
    budget_cents: int | None = None

    @property
    def period(self) -> DateRange:
        return DateRange(self.start, self.end)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One line of delivered care (geleverde zorg): ``volume`` in the contract's unit over a
    product period ``start``..``end`` (inclusive) within one calendar month.

    ``id`` is the delivery's lasting identity: a changed delivery keeps it, which is how a
    later run knows to credit what was declared before."""

    id: int
    provider_id: int
    allocation_number: str
    product_category: str
    product_code: str
    start: dt.date
    end: dt.date
    volume: int

    @property
    def order_key(self) -> tuple[str, dt.date, dt.date, int, str, int, int]:
        return (
            self.allocation_number,
            self.start,
            self.end,
            self.provider_id,
            self.product_code,
            self.volume,
            self.id,
        )


# Enum members used once or more per line, looked up once: on Python 3.11 ``Enum.MEMBER``
# costs a descriptor call (~0.25 µs), which adds up over a million lines.
_SPECIFIC, _ASPECIFIC, _GENERIC, _OUTPUT = (
    Variant.SPECIFIC,
    Variant.ASPECIFIC,
    Variant.GENERIC,
    Variant.OUTPUT,
)


class RejectReason(enum.StrEnum):
    BAD_PERIOD = "bad_period"
    NOT_ONE_MONTH = "not_one_month"
    BAD_VOLUME = "bad_volume"
    NO_ALLOCATION = "no_allocation"
    NOT_ALLOWED = "not_allowed"
    OUTSIDE_ALLOCATION = "outside_allocation"
    OTHER_PRODUCT = "other_product"
    NO_TARIFF = "no_tariff"
    TARIFF_CHANGES = "tariff_changes"
    OTHER_UNIT = "other_unit"
    OVER_VOLUME = "over_volume"
    OVER_BUDGET = "over_budget"


_REASONS: Mapping[RejectReason, str] = {
    RejectReason.BAD_PERIOD: N_("De einddatum ligt vóór de begindatum."),
    RejectReason.NOT_ONE_MONTH: N_(
        "De periode loopt over meer dan één maand. Maak per kalendermaand een aparte regel."
    ),
    RejectReason.BAD_VOLUME: N_("Het aantal moet een heel getal groter dan 0 zijn."),
    RejectReason.NO_ALLOCATION: N_("Er is geen toewijzing met nummer %(number)s."),
    RejectReason.NOT_ALLOWED: N_(
        "Deze aanbieder heeft geen toewijzing %(number)s en is op die datum niet aangemeld als "
        "onderaannemer bij de kassier die de toewijzing heeft."
    ),
    RejectReason.OUTSIDE_ALLOCATION: N_(
        "De periode valt (deels) buiten de toewijzing. De toewijzing loopt van %(start)s tot "
        "en met %(end)s."
    ),
    RejectReason.OTHER_PRODUCT: N_(
        "Dit product past niet bij de toewijzing. De toewijzing is voor %(allowed)s."
    ),
    RejectReason.NO_TARIFF: N_(
        "Er is geen contracttarief voor product %(product)s op %(day)s. Vraag de penvoerder "
        "het contract aan te vullen."
    ),
    RejectReason.TARIFF_CHANGES: N_(
        "Het tarief verandert op %(day)s, midden in deze periode. Maak een regel tot die datum "
        "en een regel vanaf die datum."
    ),
    RejectReason.OTHER_UNIT: N_(
        "Het contract rekent in een andere eenheid (%(contract_unit)s) dan de toewijzing "
        "(%(allocation_unit)s)."
    ),
    RejectReason.OVER_VOLUME: N_(
        "Hiermee gaat het aantal boven de toewijzing: toegestaan %(allowed)s %(unit)s "
        "%(per)s, al goedgekeurd %(used)s, deze regel %(volume)s."
    ),
    RejectReason.OVER_BUDGET: N_(
        "Hiermee gaat het bedrag boven het budget van de toewijzing: budget %(budget)s, "
        "al goedgekeurd %(used)s, deze regel %(amount)s."
    ),
}

VARIANT_LABELS: Mapping[Variant, str] = {
    Variant.SPECIFIC: N_("inspanningsgericht, specifiek"),
    Variant.ASPECIFIC: N_("inspanningsgericht, aspecifiek"),
    Variant.GENERIC: N_("generiek"),
    Variant.OUTPUT: N_("outputgericht"),
}

_PER = {
    Frequency.DAY: N_("per dag"),
    Frequency.WEEK: N_("per week"),
    Frequency.MONTH: N_("per maand"),
    Frequency.TOTAL: N_("in totaal"),
}


def reason_of(message: str) -> RejectReason | None:
    """The reason whose message id is ``message`` (for a stable machine code), if any."""
    return next((r for r, m in _REASONS.items() if m == message), None)


def frequency_label(frequency: Frequency) -> str:
    """ "per dag", "per week", "per maand" or "in totaal" (a message id)."""
    return _PER[frequency]


@dataclass(frozen=True)
class Rejection:
    """Why a delivery line is not accepted (afgewezen), in words for a finance clerk."""

    delivery: Delivery
    reason: RejectReason
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        """The Dutch message id; use :meth:`text` to show it."""
        return _REASONS[self.reason]

    def text(self) -> str:
        """The reason in the current language, with its details filled in."""
        params = {k: gettext(v) if k in _WORDS else v for k, v in self.params.items()}
        return gettext(self.message) % params


# Parameters that are message ids themselves (translated before they are filled in).
_WORDS = frozenset({"per", "unit", "contract_unit", "allocation_unit"})


@dataclass(frozen=True, slots=True)
class Accepted:
    """An accepted delivery line, priced: ``holder_id`` declares it to the municipality."""

    delivery: Delivery
    allocation: Allocation
    holder_id: int  # who holds the allocation and declares (the provider or the kassier)
    unit: str
    tariff_cents: int
    amount_cents: int


def within_one_month(start: dt.date, end: dt.date) -> bool:
    return (start.year, start.month) == (end.year, end.month) and start <= end


_NUMBER = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,19}", re.ASCII)
_CATEGORY = re.compile(r"\d{2}", re.ASCII)
_CODE = re.compile(r"[0-9A-Z]{5}", re.ASCII)
_MUST_BE_EMPTY = N_("Laat dit leeg bij deze soort toewijzing.")


def check_allocation(a: Allocation) -> dict[str, str]:
    """Field errors (Dutch message ids) of an allocation; empty when its fields fit its
    variant: specific needs category, code, volume, unit and frequency; aspecific only the
    category; generic none of them; output a code in pieces (82) or euros (83)."""
    errors: dict[str, str] = {}
    if not _NUMBER.fullmatch(a.number):
        errors["number"] = N_("Vul het toewijzingsnummer in (letters, cijfers en -).")
    if a.end < a.start:
        errors["end"] = N_("De einddatum ligt vóór de begindatum.")
    needs = {
        Variant.SPECIFIC: {"product_category", "product_code", "volume", "unit", "frequency"},
        Variant.ASPECIFIC: {"product_category"},
        Variant.GENERIC: set(),
        Variant.OUTPUT: {"product_code", "unit"},
    }[a.variant]
    may = {
        Variant.SPECIFIC: needs,
        Variant.ASPECIFIC: needs,
        Variant.GENERIC: needs,
        Variant.OUTPUT: needs | {"product_category", "volume", "frequency"},
    }[a.variant]
    for name in ("product_category", "product_code", "volume", "unit", "frequency"):
        value = getattr(a, name)
        if value is None and name in needs:
            errors[name] = N_("Vul dit in bij deze soort toewijzing.")
        elif value is not None and name not in may:
            errors[name] = _MUST_BE_EMPTY
    if a.product_category is not None and not _CATEGORY.fullmatch(a.product_category):
        errors.setdefault(
            "product_category", N_("Vul een productcategorie van 2 cijfers in, zoals 45.")
        )
    if a.product_code is not None and not _CODE.fullmatch(a.product_code):
        errors.setdefault("product_code", N_("Vul een productcode van 5 tekens in, zoals 45A52."))
    if a.unit is not None and a.unit not in UNITS:
        errors.setdefault("unit", N_("Kies een eenheid."))
    if a.variant is Variant.OUTPUT and a.unit not in (None, "82", "83"):
        errors.setdefault("unit", N_("Een outputgerichte toewijzing telt in stuks of euro's."))
    if (a.volume is None) != (a.frequency is None):
        errors.setdefault("frequency", N_("Vul het aantal en de frequentie allebei in."))
    if a.volume is not None and a.volume <= 0:
        errors.setdefault("volume", N_("Het aantal moet een heel getal groter dan 0 zijn."))
    if a.budget_cents is not None and a.budget_cents < 0:
        errors["budget_cents"] = N_("Het budget kan niet negatief zijn.")
    return errors


@dataclass(frozen=True)
class DeliveryDraft:
    """Delivered care as typed: for the viewer's own organisation, or (finance of the
    penvoerder) for ``provider_id``."""

    allocation_number: str
    product_code: str
    start: dt.date
    end: dt.date
    volume: int
    provider_id: int | None = None


DELIVERY_FIELDS = ("allocation_number", "product_code", "start", "end", "volume", "provider_id")
_WHOLE = re.compile(r"\d{1,9}", re.ASCII)


def read_delivery_form(values: Mapping[str, str]) -> DeliveryDraft:
    """Read the delivery form; raises :class:`InvalidInput` naming every bad field."""
    get = {name: values.get(name, "").strip() for name in DELIVERY_FIELDS}
    errors: dict[str, str] = {}
    if not get["allocation_number"]:
        errors["allocation_number"] = N_("Kies een toewijzing.")
    code = get["product_code"].upper()
    if not _CODE.fullmatch(code):
        errors["product_code"] = N_("Vul een productcode van 5 tekens in, zoals 45A52.")
    start, end = parse_date(get["start"]), parse_date(get["end"])
    if start is None:
        errors["start"] = BAD_DATE
    if end is None:
        errors["end"] = BAD_DATE
    volume = int(get["volume"]) if _WHOLE.fullmatch(get["volume"]) else 0
    provider_id = int(get["provider_id"]) if _WHOLE.fullmatch(get["provider_id"]) else None
    if start is not None and end is not None:
        errors.update(
            {k: v for k, v in check_delivery_draft(start, end, volume).items() if k not in errors}
        )
    elif volume <= 0:
        errors["volume"] = _REASONS[RejectReason.BAD_VOLUME]
    if errors:
        raise InvalidInput(errors)
    assert start is not None and end is not None
    return DeliveryDraft(get["allocation_number"], code, start, end, volume, provider_id)


def check_delivery_draft(start: dt.date, end: dt.date, volume: int) -> dict[str, str]:
    """Field errors of delivered care before any allocation is looked at."""
    errors: dict[str, str] = {}
    if end < start:
        errors["end"] = _REASONS[RejectReason.BAD_PERIOD]
    elif not within_one_month(start, end):
        errors["end"] = _REASONS[RejectReason.NOT_ONE_MONTH]
    if volume <= 0:
        errors["volume"] = _REASONS[RejectReason.BAD_VOLUME]
    return errors


def _euros(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    return f"{sign}€ {whole:,}".replace(",", ".") + f",{rest:02d}"


def _day(day: dt.date) -> str:
    return f"{day.day}-{day.month}-{day.year}"


def _volume(value: Fraction | int) -> str:
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.2f}".replace(".", ",")


def _allowed_products(a: Allocation) -> str:
    if a.variant in (_SPECIFIC, _OUTPUT):
        return f"product {a.product_code}"
    return f"productcategorie {a.product_category}"


def _product_fits(a: Allocation, category: str, code: str) -> bool:
    if a.variant is _GENERIC:
        return True
    if a.variant is _ASPECIFIC:
        return category == a.product_category
    return code == a.product_code and (a.product_category is None or category == a.product_category)


def _valid_on(c: ContractTerms, day: dt.date) -> bool:
    return c.valid_from <= day and (c.valid_to is None or day <= c.valid_to)


def _tariff(
    mine: Sequence[ContractTerms], start: dt.date, end: dt.date
) -> tuple[ContractTerms | None, RejectReason | None, dt.date]:
    """The holder's tariff covering the whole period, or why there is none. ``mine``: the
    holder's contracts for the delivered product, in the order they were given."""
    at_start = next((c for c in mine if _valid_on(c, start)), None)
    if at_start is None:
        return None, RejectReason.NO_TARIFF, start
    if at_start.valid_to is not None and at_start.valid_to < end:
        following = at_start.valid_to + dt.timedelta(days=1)
        has_next = any(_valid_on(c, following) for c in mine)
        return (
            None,
            (RejectReason.TARIFF_CHANGES if has_next else RejectReason.NO_TARIFF),
            (following),
        )
    return at_start, None, start


def _month_days(a: Allocation, year: int, month: int) -> int:
    first = dt.date(year, month, 1)
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    shared = a.period.clip(DateRange(first, last))
    return shared.days if shared else 0


def _volume_cap(a: Allocation, start: dt.date) -> tuple[object, Fraction]:
    """The bucket a line's volume counts in, and the volume allowed in that bucket.

    Day and week frequencies are pro rata over the allocation's days in the month (a week is
    7 days); a month allows the volume once per calendar month; total once per allocation."""
    assert a.volume is not None and a.frequency is not None
    if a.frequency is Frequency.TOTAL:
        return ("total",), Fraction(a.volume)
    bucket = (start.year, start.month)
    if a.frequency is Frequency.MONTH:
        return bucket, Fraction(a.volume)
    days = _month_days(a, start.year, start.month)
    per_day = Fraction(a.volume) if a.frequency is Frequency.DAY else Fraction(a.volume, 7)
    return bucket, per_day * days


class OutOfOrder(ValueError):
    """Deliveries said to come in canonical order did not (see :func:`accept_lines`)."""


# A delivery line as a plain tuple of :class:`Delivery`'s fields, in their order: how the
# quarterly run streams a million lines from the database without an object for each.
DeliveryFields = tuple[int, int, str, str, str, dt.date, dt.date, int]
# :attr:`Delivery.order_key` of such a tuple.
_order_key = itemgetter(2, 5, 6, 1, 4, 7, 0)


def _fields(d: Delivery) -> DeliveryFields:
    return (
        d.id, d.provider_id, d.allocation_number, d.product_category, d.product_code, d.start,
        d.end, d.volume,
    )  # fmt: skip


# An accepted line as the rules hand it on: the delivery's fields, its allocation, and the
# unit, tariff and amount it is priced at (an :class:`Accepted` without the objects).
_Priced = tuple[DeliveryFields, Allocation, str, int, int]


def _accepted(x: _Priced) -> Accepted:
    row, a, unit, tariff, amount = x
    return Accepted(Delivery(*row), a, a.provider_id, unit, tariff, amount)


def accept_lines(
    deliveries: Iterable[Delivery],
    allocations: Iterable[Allocation],
    contracts: Sequence[ContractTerms],
    agreements: Iterable[SubProviderAgreement] = (),
    *,
    ordered: bool = False,
) -> tuple[tuple[Accepted, ...], tuple[Rejection, ...]]:
    """Check every delivery line against its allocation, the contract tariff, the period and
    the volume or budget; return the accepted lines (priced) and the rejected ones (with why).

    The tariff is the allocation holder's: the provider's own in the declaration model, the
    kassier's in the kassier model (the kassier declares it and pays on minus its margin).

    Lines are taken in one canonical order (allocation, period, provider, product, volume,
    id), so which line goes over a limit does not depend on the order they arrived in.
    ``ordered``: the lines already come in that order (e.g. streamed from a sorted query), so
    they are checked as they pass instead of sorted; one out of order raises
    :class:`OutOfOrder`."""
    accepted: list[Accepted] = []
    rejected: list[Rejection] = []
    rows = map(_fields, deliveries)
    for x in _judge(rows, allocations, contracts, agreements, ordered=ordered):
        if isinstance(x, Rejection):
            rejected.append(x)
        else:
            accepted.append(_accepted(x))
    return tuple(accepted), tuple(rejected)


def _judge(
    rows: Iterable[DeliveryFields],
    allocations: Iterable[Allocation],
    contracts: Sequence[ContractTerms],
    agreements: Iterable[SubProviderAgreement],
    *,
    ordered: bool,
) -> Iterator[Rejection | _Priced]:
    """The outcome of each line, one at a time in canonical order (see :func:`accept_lines`),
    so a caller with a million lines need not hold them all. This loop runs once per line of
    a national quarter, so it works on plain tuples, and whatever recurs over lines (a
    holder's tariff for a product and period, whether a sub-provider was registered for a
    period, a month's volume cap) is worked out once and looked up after that."""
    by_number = {a.number: a for a in allocations}
    registrations: dict[tuple[int, int], list[SubProviderAgreement]] = defaultdict(list)
    for g in agreements:
        registrations[(g.kassier_id, g.provider_id)].append(g)
    tariffs: dict[tuple[int, str], list[ContractTerms]] = defaultdict(list)
    for c in contracts:
        tariffs[(c.provider_id, c.product_code)].append(c)
    tariff_of: dict[
        tuple[int, str, dt.date, dt.date],
        tuple[ContractTerms | None, RejectReason | None, dt.date],
    ] = {}
    registered: dict[tuple[int, int, dt.date, dt.date], bool] = {}
    # Per allocation and month: the bucket the volume counts in, the cap, and the cap as a
    # whole numerator and denominator (compared in integers, without a Fraction per line).
    caps: dict[tuple[str, int, int], tuple[tuple[str, object], Fraction, int, int]] = {}
    used_volume: dict[tuple[str, object], int] = {}
    used_budget: dict[str, int] = {}

    if not ordered:
        rows = sorted(rows, key=_order_key)
    before: tuple[object, ...] = ()  # below every key
    for row in rows:
        if ordered:
            key = _order_key(row)
            if key < before:
                raise OutOfOrder(f"delivery {row[0]} comes after a later one")
            before = key
        _id, provider_id, number, category, code, start, end, volume = row
        if end < start:
            yield Rejection(Delivery(*row), RejectReason.BAD_PERIOD, {})
            continue
        if start.month != end.month or start.year != end.year:  # within_one_month
            yield Rejection(Delivery(*row), RejectReason.NOT_ONE_MONTH, {})
            continue
        if volume <= 0:
            yield Rejection(Delivery(*row), RejectReason.BAD_VOLUME, {})
            continue
        a = by_number.get(number)
        if a is None:
            yield Rejection(Delivery(*row), RejectReason.NO_ALLOCATION, {"number": number})
            continue
        holder = a.provider_id
        if provider_id != holder:
            if (allowed := registered.get(k := (holder, provider_id, start, end))) is None:
                period = DateRange(start, end)
                allowed = registered[k] = any(
                    g.covers(period) for g in registrations.get((holder, provider_id), ())
                )
            if not allowed:
                yield Rejection(Delivery(*row), RejectReason.NOT_ALLOWED, {"number": number})
                continue
        if not (a.start <= start and end <= a.end):
            yield Rejection(
                Delivery(*row),
                RejectReason.OUTSIDE_ALLOCATION,
                {"start": _day(a.start), "end": _day(a.end)},
            )
            continue
        if not _product_fits(a, category, code):
            yield Rejection(
                Delivery(*row), RejectReason.OTHER_PRODUCT, {"allowed": _allowed_products(a)}
            )
            continue
        # The same holder, product and period recur on many lines: look the tariff up once.
        if (priced := tariff_of.get(k2 := (holder, code, start, end))) is None:
            priced = tariff_of[k2] = _tariff(tariffs.get((holder, code), ()), start, end)
        contract, why, day = priced
        if contract is None:
            assert why is not None
            yield Rejection(Delivery(*row), why, {"product": code, "day": _day(day)})
            continue
        unit = contract.unit
        if a.unit is not None and unit != a.unit:
            yield Rejection(
                Delivery(*row),
                RejectReason.OTHER_UNIT,
                {
                    "contract_unit": UNITS[unit].label,
                    "allocation_unit": UNITS[a.unit].label if a.unit in UNITS else a.unit,
                },
            )
            continue
        # Whole units times whole cents: already a whole cent, rounding (once) changes nothing.
        tariff = contract.tariff_cents
        amount = volume * tariff
        # Both limits are checked before either is counted: a refused line uses neither.
        volume_key: tuple[str, object] | None = None
        used = 0
        if a.volume is not None and a.frequency is not None:
            if (found := caps.get(month := (number, start.year, start.month))) is None:
                bucket, cap = _volume_cap(a, start)
                found = caps[month] = ((number, bucket), cap, cap.numerator, cap.denominator)
            volume_key, cap, most, per = found
            used = used_volume.get(volume_key, 0)
            if (used + volume) * per > most:
                yield Rejection(
                    Delivery(*row),
                    RejectReason.OVER_VOLUME,
                    {
                        "allowed": _volume(cap),
                        "unit": UNITS[unit].label,
                        "per": _PER[a.frequency],
                        "used": _volume(used),
                        "volume": _volume(volume),
                    },
                )
                continue
        if (budget := a.budget_cents) is not None:
            spent = used_budget.get(number, 0)
            if spent + amount > budget:
                yield Rejection(
                    Delivery(*row),
                    RejectReason.OVER_BUDGET,
                    {"budget": _euros(budget), "used": _euros(spent), "amount": _euros(amount)},
                )
                continue
            used_budget[number] = spent + amount
        if volume_key is not None:
            used_volume[volume_key] = used + volume
        yield (row, a, unit, tariff, amount)


# ---- corrections and the lines of a run ----


class Direction(enum.StrEnum):
    """Debet/credit indicator of a declaration line (iJw DebetCredit: D or C)."""

    DEBIT = "D"
    CREDIT = "C"


_DEBIT, _CREDIT = Direction.DEBIT, Direction.CREDIT  # see _SPECIFIC


@dataclass(frozen=True, slots=True)
class OutLine:
    """A line as it goes out in a run: a debit for accepted care, or a credit that takes back,
    in full, a line declared in an earlier (closed) run. ``amount_cents`` is never negative;
    :attr:`signed_cents` carries the direction."""

    delivery_id: int
    allocation_number: str
    holder_id: int
    provider_id: int
    municipality_id: int
    product_category: str
    product_code: str
    start: dt.date
    end: dt.date
    volume: int
    unit: str
    tariff_cents: int
    amount_cents: int
    direction: Direction
    revision: int = 1  # the n-th time this delivery is declared; its credit keeps the number

    @property
    def reference(self) -> str:
        """The line's own reference (ReferentieNummer): unique per delivery, revision and
        direction; a credit's :attr:`previous_reference` names the debit it takes back."""
        suffix = "C" if self.direction is _CREDIT else ""
        return f"{self.delivery_id}-{self.revision}{suffix}"

    @property
    def previous_reference(self) -> str | None:
        return f"{self.delivery_id}-{self.revision}" if self.direction is _CREDIT else None

    @property
    def signed_cents(self) -> int:
        return self.amount_cents if self.direction is _DEBIT else -self.amount_cents

    @property
    def sort_key(self) -> tuple[int, str, dt.date, int, str, str]:
        # Credits before debits of the same delivery: a line is credited before it is corrected.
        return (
            self.holder_id,
            self.allocation_number,
            self.start,
            self.delivery_id,
            "0" if self.direction is _CREDIT else "1",
            self.product_code,
        )

    def same_claim(self, other: OutLine) -> bool:
        """Whether two debits claim exactly the same thing (nothing to correct)."""
        return (
            self.allocation_number,
            self.holder_id,
            self.provider_id,
            self.product_code,
            self.start,
            self.end,
            self.volume,
            self.unit,
            self.tariff_cents,
            self.amount_cents,
        ) == (
            other.allocation_number,
            other.holder_id,
            other.provider_id,
            other.product_code,
            other.start,
            other.end,
            other.volume,
            other.unit,
            other.tariff_cents,
            other.amount_cents,
        )

    def credit(self) -> OutLine:
        assert self.direction is _DEBIT
        return replace(self, direction=_CREDIT)


# An earlier run's line, as stored with that run.
PreviousLine = OutLine


def outstanding(previous: Iterable[OutLine]) -> dict[int, OutLine]:
    """Per delivery, the debit of earlier runs that still stands (not yet credited)."""
    standing: dict[int, OutLine] = {}
    for line in previous:
        if line.direction is _DEBIT:
            standing[line.delivery_id] = line
        else:
            standing.pop(line.delivery_id, None)
    return standing


@dataclass(frozen=True)
class Settlement:
    """The outcome of a run: lines out (credits and debits, in declaration order), the
    accepted and rejected delivery lines, and per holder the total (sum of its lines)."""

    lines: tuple[OutLine, ...]
    accepted: tuple[Accepted, ...]
    rejected: tuple[Rejection, ...]

    @property
    def totals(self) -> dict[int, int]:
        totals: dict[int, int] = defaultdict(int)
        for line in self.lines:
            totals[line.holder_id] += line.signed_cents
        return dict(sorted(totals.items()))

    @property
    def total_cents(self) -> int:
        return sum(line.signed_cents for line in self.lines)


def settle(
    deliveries: Iterable[Delivery],
    allocations: Iterable[Allocation],
    contracts: Sequence[ContractTerms],
    agreements: Iterable[SubProviderAgreement] = (),
    previous: Iterable[OutLine] = (),
    *,
    ordered: bool = False,
) -> Settlement:
    """Settle a run: accept or reject every delivery, then compare with what earlier, closed
    runs declared (``previous``, in the order they went out). A line already declared and
    unchanged goes out no more; a changed one is first credited in full and then declared
    anew; one no longer accepted (changed into a rejection or removed) is credited. Earlier
    runs are never rewritten: every correction is a new line in this run.

    ``ordered``: as for :func:`accept_lines`."""
    accepted: list[Accepted] = []
    lines, rejected = _settle(
        map(_fields, deliveries), allocations, contracts, agreements, previous,
        accepted.append, ordered,
    )  # fmt: skip
    return Settlement(lines, tuple(accepted), rejected)


def settle_lines(
    deliveries: Iterable[Delivery],
    allocations: Iterable[Allocation],
    contracts: Sequence[ContractTerms],
    agreements: Iterable[SubProviderAgreement] = (),
    previous: Iterable[OutLine] = (),
    *,
    ordered: bool = False,
) -> tuple[tuple[OutLine, ...], tuple[Rejection, ...]]:
    """The lines and rejections of :func:`settle`, without keeping every accepted line (and
    so every delivery) alive: what a quarterly run of a million lines stores."""
    return settle_rows(
        map(_fields, deliveries), allocations, contracts, agreements, previous, ordered=ordered
    )


def settle_rows(
    rows: Iterable[DeliveryFields],
    allocations: Iterable[Allocation],
    contracts: Sequence[ContractTerms],
    agreements: Iterable[SubProviderAgreement] = (),
    previous: Iterable[OutLine] = (),
    *,
    ordered: bool = False,
) -> tuple[tuple[OutLine, ...], tuple[Rejection, ...]]:
    """:func:`settle_lines` of deliveries given as plain tuples of their fields
    (:data:`DeliveryFields`), as the quarterly run reads them from the database."""
    return _settle(rows, allocations, contracts, agreements, previous, None, ordered)


def _settle(
    rows: Iterable[DeliveryFields],
    allocations: Iterable[Allocation],
    contracts: Sequence[ContractTerms],
    agreements: Iterable[SubProviderAgreement],
    previous: Iterable[OutLine],
    keep: Callable[[Accepted], None] | None,
    ordered: bool,
) -> tuple[tuple[OutLine, ...], tuple[Rejection, ...]]:
    previous = tuple(previous)
    standing = outstanding(previous)
    declared = Counter(p.delivery_id for p in previous if p.direction is _DEBIT)
    rejected: list[Rejection] = []
    out: list[OutLine] = []
    add, debit_ = out.append, _DEBIT
    for x in _judge(rows, allocations, contracts, agreements, ordered=ordered):
        if isinstance(x, Rejection):
            rejected.append(x)
            continue
        if keep is not None:
            keep(_accepted(x))
        row, a, unit, tariff, amount = x
        delivery_id = row[0]
        debit = OutLine(
            delivery_id, row[2], a.provider_id, row[1], a.municipality_id, row[3], row[4],
            row[5], row[6], row[7], unit, tariff, amount, debit_, declared.get(delivery_id, 0) + 1,
        )  # fmt: skip
        if standing and (before := standing.pop(delivery_id, None)) is not None:
            if before.same_claim(debit):
                continue
            add(before.credit())
        add(debit)
    out.extend(before.credit() for before in standing.values())
    return _in_declaration_order(out), tuple(rejected)


def _in_declaration_order(lines: list[OutLine]) -> tuple[OutLine, ...]:
    """``lines`` sorted by :attr:`OutLine.sort_key`. Its first part is the holder, so each
    holder's lines are sorted on their own: the same order, with the sort keys of one holder
    in memory at a time instead of all of them."""
    per_holder: dict[int, list[OutLine]] = defaultdict(list)
    for line in lines:
        per_holder[line.holder_id].append(line)
    lines.clear()
    for holder in sorted(per_holder):
        group = per_holder.pop(holder)
        group.sort(key=attrgetter("sort_key"))
        lines.extend(group)
    return tuple(lines)
