"""The funder's quarterly monitor (kwartaalmonitor, seed 003 §4.1 and §6; RET: every six months):
pure aggregation into non-personal figures, the charts' geometry, and the XLSX and CSV files.

These figures leave the care chain (to the municipality and the funder), so only aggregates
go out: no case, no pseudonym, no amount of one youth. A count of youths from 1 to 4 is shown
as "<5" (small-number suppression), and an average over fewer than 5 youths is not shown: with
a handful of youths in a small municipality a count or an average can point at a family.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from keerpunt.platform.i18n import N_, current_locale, gettext
from keerpunt.settlement.rules import DateRange, Quarter
from keerpunt.settlement.triage_hours import BudgetStatus, TriageHours, hours_text

__all__ = [
    "AMBULANT_FORMS",
    "DISCIPLINE_LABELS",
    "HELP_FORM_LABELS",
    "SMALL",
    "Bar",
    "Chart",
    "Count",
    "HelpFormRow",
    "MonitorReport",
    "RetRow",
    "assemble_monitor",
    "charts",
    "count",
    "monitor_csv",
    "monitor_rows",
    "monitor_xlsx",
]

SMALL = 5  # counts of youths below this (and above 0) are shown as "<5"

# Forms of help (triage VOCAB["help_form"]): ambulant help first, a chair or a bed as backup.
# Day treatment (a "stoel") is help without a stay, so it counts as ambulant here.
HELP_FORM_LABELS: dict[str, str] = {
    "ambulant": N_("Ambulant"),
    "intensive_ambulant": N_("Intensief ambulant (bij het gezin thuis)"),
    "day_treatment": N_("Dagbehandeling (stoel)"),
    "short_stay": N_("Kort verblijf (bed)"),
    "part_time_foster": N_("Deeltijdpleegzorg"),
    "foster_care": N_("Pleegzorg"),
    "residential": N_("Wonen in een groep (residentieel)"),
    "jeugdzorgplus": N_("JeugdzorgPlus (gesloten)"),
}
AMBULANT_FORMS = frozenset({"ambulant", "intensive_ambulant", "day_treatment"})

DISCIPLINE_LABELS: dict[str, str] = {
    "regiebehandelaar": N_("regiebehandelaar"),
    "systeembehandelaar": N_("systeembehandelaar"),
    "gezinsbehandelaar": N_("gezinsbehandelaar"),
    "gedragswetenschapper": N_("gedragswetenschapper"),
    "ervaringsdeskundige": N_("ervaringsdeskundige"),
    "onderwijsconsulent": N_("onderwijsconsulent"),
    "sociaal_domein": N_("sociaal domein en schulden"),
}

DAYS_PER_MONTH = Decimal("30.4375")  # 365.25 / 12


@dataclass(frozen=True)
class Count:
    """A count of youths as it may leave the care chain."""

    value: int

    @property
    def suppressed(self) -> bool:
        return 0 < self.value < SMALL

    @property
    def display(self) -> str:
        return f"<{SMALL}" if self.suppressed else str(self.value)


def count(value: int) -> Count:
    return Count(value)


class ArrangementLineLike(Protocol):
    """A line of a fixed arrangement (triage.service.FixedArrangementLine)."""

    @property
    def line_id(self) -> int: ...
    @property
    def case_id(self) -> int: ...
    @property
    def session_id(self) -> int: ...
    @property
    def provider_id(self) -> int: ...
    @property
    def help_form(self) -> str: ...
    @property
    def start_date(self) -> dt.date: ...
    @property
    def end_date(self) -> dt.date: ...


@dataclass(frozen=True)
class HelpFormRow:
    form: str
    label: str  # message id
    ambulant: bool
    youths: Count


@dataclass(frozen=True)
class RetRow:
    provider: str
    allocations: Count


@dataclass(frozen=True)
class Bar:
    label: str  # already translated, or a provider name
    value: int
    display: str  # what the reader sees: "<5", "12", "€ 1.234,00", "36 uur"
    length: float  # 0..BAR_SPACE, in SVG units; 0 for a suppressed value


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart, drawn as inline SVG by the template; ``summary`` says in one
    sentence what it shows and the table under it holds the same data."""

    id: str
    title: str
    summary: str
    label_header: str
    value_header: str
    bars: tuple[Bar, ...]

    # Geometry (SVG units, viewBox 400 wide): a label line above each bar.
    WIDTH = 400
    ROW = 54
    BAR_SPACE = 250

    @property
    def height(self) -> int:
        return max(1, len(self.bars)) * self.ROW + 8


@dataclass(frozen=True)
class MonitorReport:
    quarter: Quarter
    youths: Count
    providers: int
    arrangements: Count
    started: Count
    ended: Count
    average_months: Decimal | None  # planned duration; None when suppressed or none
    cost_cents: int  # what the arrangements cost in the quarter (contract tariffs)
    average_cost_cents: int | None  # per youth in the quarter; None when suppressed
    help_forms: tuple[HelpFormRow, ...]
    ambulant_youths: Count
    residential_youths: Count
    triage: TriageHours
    budget: BudgetStatus
    unconfirmed_sessions: int
    half_year: str  # "2026H2"
    ret: tuple[RetRow, ...]

    @property
    def average_months_text(self) -> str:
        """The average duration in the viewer's language ("9,1"); empty when not shown."""
        if self.average_months is None:
            return ""
        from babel.numbers import format_decimal

        return format_decimal(self.average_months, format="0.0", locale=current_locale.get())

    @property
    def ret_total(self) -> Count:
        return count(sum(r.allocations.value for r in self.ret))

    @property
    def ret_total_display(self) -> str:
        """The total of the RET rows, unless it would give away the one hidden row (total
        minus the others): then it is left out too (secondary suppression)."""
        if sum(1 for r in self.ret if r.allocations.suppressed) == 1:
            return gettext(N_("niet getoond"))
        return self.ret_total.display


def _months(days: Decimal) -> Decimal:
    return (days / DAYS_PER_MONTH).quantize(Decimal("0.1"))


def _bars(items: Sequence[tuple[str, int, str]], *, suppress: bool) -> tuple[Bar, ...]:
    visible = [v for _l, v, _d in items if not (suppress and 0 < v < SMALL)]
    top = max(visible, default=0)
    return tuple(
        Bar(
            label,
            value,
            display,
            0.0
            if top == 0 or (suppress and 0 < value < SMALL)
            else round(Chart.BAR_SPACE * value / top, 1),
        )
        for label, value, display in items
    )


def assemble_monitor(
    quarter: Quarter,
    lines: Iterable[ArrangementLineLike],
    amounts: Mapping[int, int],
    triage: TriageHours,
    budget: BudgetStatus,
    unconfirmed_sessions: int,
    ret: Sequence[tuple[str, int]],
) -> MonitorReport:
    """The quarter's figures from the fixed arrangement lines overlapping it (``amounts``:
    their cost in the quarter by line id), the priced triage time, the budget and the RET
    allocations of the half year. Arrangement = the lines of one session."""
    active = [ln for ln in lines if DateRange(ln.start_date, ln.end_date).clip(quarter.period)]
    cases = {ln.case_id for ln in active}
    spans: dict[int, tuple[dt.date, dt.date]] = {}
    for ln in active:
        lo, hi = spans.get(ln.session_id, (ln.start_date, ln.end_date))
        spans[ln.session_id] = (min(lo, ln.start_date), max(hi, ln.end_date))
    youths = count(len(cases))
    arrangements = count(len(spans))
    started = count(sum(1 for lo, _hi in spans.values() if quarter.start <= lo <= quarter.end))
    ended = count(sum(1 for _lo, hi in spans.values() if quarter.start <= hi <= quarter.end))
    average_months: Decimal | None = None
    if spans and not arrangements.suppressed:
        days = sum((hi - lo).days + 1 for lo, hi in spans.values())
        average_months = _months(Decimal(days) / len(spans))
    cost = sum(amounts.get(ln.line_id, 0) for ln in active)
    average_cost = None
    if cases and not youths.suppressed:
        average_cost = (cost * 2 + len(cases)) // (2 * len(cases))  # half up, amounts >= 0
    by_form: dict[str, set[int]] = {}
    for ln in active:
        by_form.setdefault(ln.help_form, set()).add(ln.case_id)
    order = list(HELP_FORM_LABELS)
    forms = tuple(
        HelpFormRow(
            form,
            HELP_FORM_LABELS.get(form, form),
            form in AMBULANT_FORMS,
            count(len(by_form.get(form, set()))),
        )
        for form in sorted(
            set(order) | set(by_form), key=lambda f: order.index(f) if f in order else 99
        )
    )
    ambulant = count(len({c for f, cs in by_form.items() if f in AMBULANT_FORMS for c in cs}))
    residential = count(
        len({c for f, cs in by_form.items() if f not in AMBULANT_FORMS for c in cs})
    )
    ret_rows = tuple(RetRow(name, count(n)) for name, n in ret)
    half = f"{quarter.year}H{1 if quarter.q <= 2 else 2}"
    return MonitorReport(
        quarter=quarter,
        youths=youths,
        providers=len({ln.provider_id for ln in active}),
        arrangements=arrangements,
        started=started,
        ended=ended,
        average_months=average_months,
        cost_cents=cost,
        average_cost_cents=average_cost,
        help_forms=forms,
        ambulant_youths=ambulant,
        residential_youths=residential,
        triage=triage,
        budget=budget,
        unconfirmed_sessions=unconfirmed_sessions,
        half_year=half,
        ret=ret_rows,
    )


def charts(report: MonitorReport, fmt: Callable[[int], str]) -> tuple[Chart, ...]:
    """The page's charts, translated for the viewer (``fmt``: cents as money text)."""
    forms = _bars(
        [(gettext(r.label), r.youths.value, r.youths.display) for r in report.help_forms],
        suppress=True,
    )
    used_forms = [r for r in report.help_forms if r.youths.value]
    most = max(used_forms, key=lambda r: r.youths.value, default=None)
    help_chart = Chart(
        "chart-help",
        gettext(N_("Jeugdigen per vorm van hulp")),
        gettext(
            N_(
                "Ambulante hulp (met dagbehandeling): %(ambulant)s jeugdigen. "
                "Een vorm van verblijf: %(residential)s jeugdigen."
            )
        )
        % {
            "ambulant": report.ambulant_youths.display,
            "residential": report.residential_youths.display,
        }
        + (
            " " + gettext(N_("Het meest gebruikt: %(form)s.")) % {"form": gettext(most.label)}
            if most and not most.youths.suppressed
            else ""
        ),
        gettext(N_("Vorm van hulp")),
        gettext(N_("Jeugdigen")),
        forms,
    )
    by_discipline = report.triage.minutes_by_discipline()
    hours_chart = Chart(
        "chart-triage",
        gettext(N_("Uren van het triageteam per discipline")),
        gettext(N_("In totaal %(hours)s uur, samen %(amount)s."))
        % {"hours": hours_text(report.triage.minutes), "amount": fmt(report.triage.amount_cents)},
        gettext(N_("Discipline")),
        gettext(N_("Uren")),
        _bars(
            [
                (gettext(DISCIPLINE_LABELS.get(d, d)), m, hours_text(m))
                for d, m in by_discipline.items()
            ],
            suppress=False,
        ),
    )
    b = report.budget
    if b.budget_cents is None:
        budget_summary = gettext(N_("Er is geen budget voor dit jaar vastgelegd."))
        budget_items: list[tuple[str, int, str]] = [
            (gettext(N_("Gebruikt")), b.used_cents, fmt(b.used_cents))
        ]
    else:
        budget_summary = gettext(
            N_("Van het budget is %(percent)s procent gebruikt. Over: %(left)s.")
        ) % {"percent": b.used_percent, "left": fmt(b.left_cents or 0)}
        budget_items = [
            (gettext(N_("Budget van het jaar")), b.budget_cents, fmt(b.budget_cents)),
            (gettext(N_("Gebruikt tot en met dit kwartaal")), b.used_cents, fmt(b.used_cents)),
            (gettext(N_("Over")), max(0, b.left_cents or 0), fmt(b.left_cents or 0)),
        ]
    budget_chart = Chart(
        "chart-budget",
        gettext(N_("Budget van het triageteam")),
        budget_summary,
        gettext(N_("Onderdeel")),
        gettext(N_("Bedrag")),
        _bars(budget_items, suppress=False),
    )
    ret_chart = Chart(
        "chart-ret",
        gettext(N_("Toewijzingen (RET) per aanbieder in dit halfjaar")),
        gettext(N_("In totaal %(count)s toewijzingen in halfjaar %(half)s."))
        % {"count": report.ret_total_display, "half": report.half_year},
        gettext(N_("Aanbieder")),
        gettext(N_("Toewijzingen")),
        _bars(
            [(r.provider, r.allocations.value, r.allocations.display) for r in report.ret],
            suppress=True,
        ),
    )
    return (help_chart, hours_chart, budget_chart, ret_chart)


# ---- downloads -----------------------------------------------------------------------------


def _euros(cents: int | None) -> str:
    """Cents as a Dutch number for Excel ("1234,56"), no currency sign."""
    if cents is None:
        return ""
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    return f"{sign}{whole},{rest:02d}"


def monitor_rows(report: MonitorReport) -> list[tuple[str, str, str]]:
    """The whole monitor as (part, item, value) rows, translated: the CSV and XLSX content.
    Suppressed counts are "<5"; amounts are euros with a decimal comma."""
    t = gettext
    q = report.quarter.code
    rows: list[tuple[str, str, str]] = [
        (t(N_("Kwartaal")), "", q),
        (t(N_("Arrangementen")), t(N_("Jeugdigen")), report.youths.display),
        (t(N_("Arrangementen")), t(N_("Arrangementen")), report.arrangements.display),
        (t(N_("Arrangementen")), t(N_("Gestart in dit kwartaal")), report.started.display),
        (t(N_("Arrangementen")), t(N_("Geëindigd in dit kwartaal")), report.ended.display),
        (t(N_("Arrangementen")), t(N_("Betrokken aanbieders")), str(report.providers)),
        (
            t(N_("Arrangementen")),
            t(N_("Gemiddelde duur (maanden)")),
            report.average_months_text,
        ),
        (t(N_("Arrangementen")), t(N_("Kosten in dit kwartaal (euro)")), _euros(report.cost_cents)),
        (
            t(N_("Arrangementen")),
            t(N_("Gemiddelde kosten per jeugdige (euro)")),
            _euros(report.average_cost_cents),
        ),
        (
            t(N_("Vorm van hulp")),
            t(N_("Ambulant (met dagbehandeling)")),
            report.ambulant_youths.display,
        ),
        (t(N_("Vorm van hulp")), t(N_("Verblijf")), report.residential_youths.display),
    ]
    rows += [(t(N_("Vorm van hulp")), t(r.label), r.youths.display) for r in report.help_forms]
    rows.append((t(N_("Triageteam")), t(N_("Uren")), hours_text(report.triage.minutes)))
    rows += [
        (t(N_("Triageteam")), t(N_("Uren")) + " " + t(DISCIPLINE_LABELS.get(d, d)), hours_text(m))
        for d, m in report.triage.minutes_by_discipline().items()
    ]
    rows += [
        (
            t(N_("Triageteam")),
            t(N_("Kosten in dit kwartaal (euro)")),
            _euros(report.triage.amount_cents),
        ),
        (
            t(N_("Triageteam")),
            t(N_("Budget van het jaar (euro)")),
            _euros(report.budget.budget_cents),
        ),
        (
            t(N_("Triageteam")),
            t(N_("Gebruikt tot en met dit kwartaal (euro)")),
            _euros(report.budget.used_cents),
        ),
        (t(N_("Triageteam")), t(N_("Over (euro)")), _euros(report.budget.left_cents)),
    ]
    ret_part = t(N_("Toewijzingen RET")) + " " + report.half_year
    rows += [(ret_part, r.provider, r.allocations.display) for r in report.ret]
    rows.append((ret_part, t(N_("Totaal")), report.ret_total_display))
    return rows


def _header() -> tuple[str, str, str]:
    return (gettext(N_("Onderdeel")), gettext(N_("Omschrijving")), gettext(N_("Waarde")))


def monitor_csv(report: MonitorReport) -> bytes:
    """CSV for Dutch Excel: ``;`` between fields, UTF-8 with a byte-order mark."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(_header())
    writer.writerows(monitor_rows(report))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


_FIXED = dt.datetime(2000, 1, 1)  # document metadata: the same data gives the same bytes
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_CORE_TIMES = re.compile(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)")


def monitor_xlsx(report: MonitorReport) -> bytes:
    """The monitor as an XLSX workbook (one sheet, the rows of :func:`monitor_rows`; numbers
    as numbers where they are not suppressed). Byte-identical for the same data: the document
    dates and the zip entries' times are fixed."""
    from openpyxl import Workbook  # only the download needs it

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = gettext(N_("Monitor")) + " " + report.quarter.code
    ws.append(_header())
    for part, item, value in monitor_rows(report):
        cell: object = value
        plain = value.replace(",", ".", 1)
        if re.fullmatch(r"-?\d+(\.\d+)?", plain):
            cell = Decimal(plain) if "." in plain else int(plain)
        ws.append((part, item, cell))
    ws.column_dimensions["A"].width = 28
    ws.column_dimensions["B"].width = 44
    ws.column_dimensions["C"].width = 16
    wb.properties.creator = "Keerpunt"
    wb.properties.created = _FIXED
    wb.properties.modified = _FIXED
    raw = io.BytesIO()
    wb.save(raw)
    # openpyxl stamps "modified" with the time of saving and the zip with the clock: fix both.
    fixed = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(raw.getvalue())) as src,
        zipfile.ZipFile(fixed, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = _CORE_TIMES.sub(rb"\g<1>2000-01-01T00:00:00Z\g<3>", data)
            entry = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o600 << 16
            dst.writestr(entry, data)
    return fixed.getvalue()
