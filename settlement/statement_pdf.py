"""A provider's statement (afrekenoverzicht) as a PDF: pure, from the same view model as the
web page. Dated on the day the run closed, so the same run gives byte-identical files."""

from __future__ import annotations

import datetime as dt

from keerpunt.platform.i18n import N_, gettext, local_date, local_datetime, money
from keerpunt.platform.pdf import FONT, KeerpuntPDF
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.rules import Quarter
from keerpunt.settlement.statement_view import (
    KassierPart,
    ProviderStatement,
    provider_statement,
    statement_providers,
)

__all__ = ["statement_pdf", "statement_pdf_name", "statement_pdfs"]


def _t(msgid: str, **params: object) -> str:
    text = gettext(msgid)
    return text % params if params else text


def statement_pdf_name(view: ProviderStatement) -> str:
    return f"afrekening-{view.quarter.code}-{view.provider_id}.pdf"


def _split_table(
    pdf: KeerpuntPDF, caption: str, who: str, net: str, parts: tuple[KassierPart, ...]
) -> None:
    pdf.heading(caption)
    with pdf.table(
        col_widths=(4, 2, 2, 2), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"), line_height=6
    ) as table:
        table.row((who, _t(N_("Bruto")), _t(N_("Marge")), net))
        for p in parts:
            table.row((p.name, money(p.gross_cents), money(p.margin_cents), money(p.net_cents)))


# The lines table, in mm on A4 landscape (261 mm between the margins). Plain cells, not
# fpdf2's table(): that lays out every cell as a paragraph, about 100 times slower, and a
# provider's quarter can have tens of thousands of lines.
_COLUMNS = (
    (N_("Toewijzing"), 30, "L"),
    (N_("Referentie"), 22, "L"),
    (N_("Geleverd door"), 40, "L"),
    (N_("Product"), 20, "L"),
    (N_("Periode"), 44, "L"),
    (N_("Volume"), 14, "R"),
    (N_("Eenheid"), 16, "L"),
    (N_("Tarief"), 24, "R"),
    (N_("Bedrag"), 28, "R"),
    (N_("D/C"), 10, "C"),
)
_ROW = 5.0


def _fit(pdf: KeerpuntPDF, text: str, width: float, cache: dict[tuple[str, float], str]) -> str:
    """``text`` cut short with an ellipsis so it fits in a column of ``width`` mm."""
    key = (text, width)
    if key not in cache:
        room = width - 2 * pdf.c_margin
        fitted = text
        while fitted and pdf.get_string_width(fitted) > room:
            fitted = fitted[:-2] + "…"
        cache[key] = fitted
    return cache[key]


def _header(pdf: KeerpuntPDF) -> None:
    pdf.set_font(FONT, "B", 8)
    for title, width, align in _COLUMNS:
        pdf.cell(width, _ROW + 1, _t(title), border="B", align=align)
    pdf.ln()
    pdf.set_font(FONT, "", 8)


def _lines_table(pdf: KeerpuntPDF, view: ProviderStatement) -> None:
    # pdf.text() places a string without cell layout: fast enough for many thousands of rows.
    cache: dict[tuple[str, float], str] = {}
    widths: dict[str, float] = {}
    # Babel formatting is the slow part of a row; amounts and periods repeat a lot.
    amounts: dict[int, str] = {}
    periods: dict[tuple[dt.date, dt.date], str] = {}

    def amount(cents: int) -> str:
        if cents not in amounts:
            amounts[cents] = money(cents)
        return amounts[cents]

    def period(start: dt.date, end: dt.date) -> str:
        if (start, end) not in periods:
            periods[start, end] = f"{local_date(start, 'short')} – {local_date(end, 'short')}"
        return periods[start, end]

    _header(pdf)
    for x in view.lines:
        if pdf.will_page_break(_ROW):
            pdf.add_page()
            _header(pdf)
        values = (
            x.allocation_number,
            x.reference,
            x.provider,
            f"{x.product_category} {x.product_code}",
            period(x.start, x.end),
            str(x.volume),
            _t(x.unit_label),
            amount(x.tariff_cents),
            amount(x.signed_cents),
            x.direction,
        )
        left, baseline = pdf.l_margin, pdf.y + _ROW * 0.7
        for value, (_title, width, align) in zip(values, _COLUMNS, strict=True):
            text = _fit(pdf, value, width, cache)
            if align == "L":
                at = left + pdf.c_margin
            else:
                if text not in widths:
                    widths[text] = pdf.get_string_width(text)
                room = width - 2 * pdf.c_margin
                at = left + pdf.c_margin + (room - widths[text]) / (2 if align == "C" else 1)
            pdf.text(at, baseline, text)
            left += width
        pdf.set_y(pdf.y + _ROW)
    pdf.set_font(FONT, "", 10)


def statement_pdf(view: ProviderStatement) -> bytes:
    """The statement as an A4 landscape PDF: the lines with totals, and for a kassier (or a
    provider delivering under one) the split into margin and net."""
    title = _t(
        N_("Afrekening kwartaal %(q)s van %(year)s"), q=view.quarter.q, year=view.quarter.year
    )
    pdf = KeerpuntPDF(f"{title} · {view.provider_name}", created=view.closed_at, orientation="L")
    pdf.set_title(f"{title} · {view.provider_name}")
    pdf.set_creator("Keerpunt")
    pdf.add_page()
    pdf.title_line(title)
    pdf.para(view.provider_name, bold=True)
    pdf.para(_t(N_("Afgesloten op %(when)s."), when=local_datetime(view.closed_at)))
    pdf.para(_t(N_("Controlegetal (SHA-256) van het overzicht: %(digest)s"), digest=view.digest))

    pdf.heading(_t(N_("Regels")))
    _lines_table(pdf, view)
    pdf.set_font(FONT, "", 10)
    pdf.ln(2)
    pdf.para(_t(N_("Debet: %(amount)s"), amount=money(view.debit_cents)))
    pdf.para(_t(N_("Credit: %(amount)s"), amount=money(view.credit_cents)))
    pdf.para(_t(N_("Totaal: %(amount)s"), amount=money(view.total_cents)), bold=True)

    if view.sub_providers:
        _split_table(
            pdf,
            _t(N_("Als kassier: marge en door te betalen")),
            _t(N_("Onderaannemer")),
            _t(N_("Te betalen")),
            view.sub_providers,
        )
        pdf.para(_t(N_("U houdt: %(amount)s"), amount=money(view.kassier_keeps_cents)), bold=True)
        pdf.para(
            _t(N_("U betaalt door: %(amount)s"), amount=money(view.net_to_pay_cents)), bold=True
        )
    if view.kassiers:
        _split_table(
            pdf,
            _t(N_("Via de kassier")),
            _t(N_("Kassier")),
            _t(N_("U ontvangt")),
            view.kassiers,
        )
    if not view.ledger_complete:
        pdf.para(_t(LEDGER_INCOMPLETE))
    if view.margins_of_today:
        pdf.para(_t(MARGINS_OF_TODAY))
    return pdf.to_bytes()


LEDGER_INCOMPLETE = N_(
    "Van een of meer regels is de afspraak met de kassier niet meer te vinden. Daarom staat "
    "de marge van die regels niet op dit overzicht."
)
MARGINS_OF_TODAY = N_(
    "Let op: de marges van de kassier op dit overzicht zijn berekend met de afspraken van "
    "vandaag. Dit kwartaal is afgesloten voordat Keerpunt de marges bij het afsluiten "
    "bewaarde. Is een afspraak daarna veranderd, dan kan de marge afwijken van wat toen is "
    "betaald."
)


async def statement_pdfs(uow: UnitOfWork, quarter: Quarter) -> list[tuple[str, bytes]]:
    """Every provider's statement of a closed quarter as PDF: (file name, bytes), by name.
    Finance of the penvoerder only."""
    files = []
    for provider_id, _name in await statement_providers(uow, quarter):
        view = await provider_statement(uow, quarter, provider_id)
        files.append((statement_pdf_name(view), statement_pdf(view)))
    return files
