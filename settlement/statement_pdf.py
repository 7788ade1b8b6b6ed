"""A provider's statement (afrekenoverzicht) as a PDF: pure, from the same view model as the
web page. Dated on the day the run closed, so the same run gives byte-identical files."""

from __future__ import annotations

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
    pdf.set_font(FONT, "", 8)
    with pdf.table(
        col_widths=(3, 3, 3, 2, 4, 2, 2, 2, 3, 1),
        text_align=(
            "LEFT",
            "LEFT",
            "LEFT",
            "LEFT",
            "LEFT",
            "RIGHT",
            "LEFT",
            "RIGHT",
            "RIGHT",
            "CENTER",
        ),
        line_height=5,
    ) as table:
        table.row(
            (
                _t(N_("Toewijzing")),
                _t(N_("Referentie")),
                _t(N_("Geleverd door")),
                _t(N_("Product")),
                _t(N_("Periode")),
                _t(N_("Volume")),
                _t(N_("Eenheid")),
                _t(N_("Tarief")),
                _t(N_("Bedrag")),
                _t(N_("D/C")),
            )
        )
        for x in view.lines:
            table.row(
                (
                    x.allocation_number,
                    x.reference,
                    x.provider,
                    f"{x.product_category} {x.product_code}",
                    f"{local_date(x.start, 'short')} – {local_date(x.end, 'short')}",
                    str(x.volume),
                    _t(x.unit_label),
                    money(x.tariff_cents),
                    money(x.signed_cents),
                    x.direction,
                )
            )
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
    return pdf.to_bytes()


LEDGER_INCOMPLETE = N_(
    "Van een of meer regels is de afspraak met de kassier niet meer te vinden. Daarom staat "
    "de marge van die regels niet op dit overzicht."
)


async def statement_pdfs(uow: UnitOfWork, quarter: Quarter) -> list[tuple[str, bytes]]:
    """Every provider's statement of a closed quarter as PDF: (file name, bytes), by name.
    Finance of the penvoerder only."""
    files = []
    for provider_id, _name in await statement_providers(uow, quarter):
        view = await provider_statement(uow, quarter, provider_id)
        files.append((statement_pdf_name(view), statement_pdf(view)))
    return files
