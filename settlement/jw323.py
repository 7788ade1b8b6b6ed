"""Declaration files shaped like the iJw JW323 message (declaratie jeugdhulp): pure, no database.

Per declaring provider, municipality and month one file: a header (sender AGB code, receiving
municipality, message id, date, period, invoice number, total with debit/credit) and one line
per declared or credited delivery (reference, allocation number, product category and code,
product period, delivered volume, unit, tariff, amount in cents, debit/credit). The provider
hands the file to its own messaging (VECOZO / GGK); Keerpunt does not send it.

Element names follow the JW323 field names of iJw 3.x, but the file is not validated against
the iStandaarden XSD (not available to us); the provider's messaging software maps it. The
output is deterministic: the same lines give the same bytes.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from keerpunt.settlement.declaration import Direction, OutLine

__all__ = [
    "DeclarationFile",
    "Sender",
    "TotalsDifference",
    "check_own_totals",
    "declaration_files",
]


@dataclass(frozen=True)
class Sender:
    """The declaring provider (afzender) as the message names it."""

    provider_id: int
    agb_code: str
    name: str


@dataclass(frozen=True)
class DeclarationFile:
    """One month's declaration of one provider to one municipality."""

    sender: Sender
    municipality_code: str
    month: tuple[int, int]
    lines: tuple[OutLine, ...]
    created_on: dt.date

    @property
    def total_cents(self) -> int:
        """The sum of the lines (credits negative); never computed any other way."""
        return sum(line.signed_cents for line in self.lines)

    @property
    def period(self) -> tuple[dt.date, dt.date]:
        year, month = self.month
        first = dt.date(year, month, 1)
        after = dt.date(year + (month == 12), month % 12 + 1, 1)
        return first, after - dt.timedelta(days=1)

    @property
    def number(self) -> str:
        """Invoice number (DeclaratieFactuurNummer): stable for provider, municipality, month
        and creation day, so a re-run gives the same file."""
        year, month = self.month
        return (
            f"{self.sender.agb_code}-{self.municipality_code}-{year}{month:02d}-"
            f"{self.created_on:%Y%m%d}"
        )

    @property
    def filename(self) -> str:
        return f"JW323-{self.number}.xml"

    def to_xml(self) -> bytes:
        first, last = self.period
        root = ET.Element("Bericht")
        header = ET.SubElement(root, "Header")
        _text(header, "BerichtCode", "323")
        _text(header, "BerichtVersie", "3")
        _text(header, "BerichtSubversie", "2")
        _text(header, "Afzender", self.sender.agb_code)
        _text(header, "AfzenderNaam", self.sender.name)
        _text(header, "Ontvanger", self.municipality_code)
        _text(header, "IdentificatieBericht", self.number)
        _text(header, "DagtekeningBericht", self.created_on.isoformat())
        period = ET.SubElement(header, "DeclaratieFactuurPeriode")
        _text(period, "Begindatum", first.isoformat())
        _text(period, "Einddatum", last.isoformat())
        _text(header, "DeclaratieFactuurNummer", self.number)
        _text(header, "AantalPrestaties", str(len(self.lines)))
        _amount(header, "TotaalBedrag", self.total_cents)
        lines = ET.SubElement(root, "Prestaties")
        for line in self.lines:
            p = ET.SubElement(lines, "Prestatie")
            _text(p, "ReferentieNummer", line.reference)
            if line.previous_reference is not None:
                _text(p, "VorigReferentieNummer", line.previous_reference)
            _text(p, "ToewijzingNummer", line.allocation_number)
            product = ET.SubElement(p, "Product")
            _text(product, "Categorie", line.product_category)
            _text(product, "Code", line.product_code)
            product_period = ET.SubElement(p, "ProductPeriode")
            _text(product_period, "Begindatum", line.start.isoformat())
            _text(product_period, "Einddatum", line.end.isoformat())
            _text(p, "GeleverdVolume", str(line.volume))
            _text(p, "Eenheid", line.unit)
            _text(p, "ProductTarief", str(line.tariff_cents))
            _text(p, "BerekendBedrag", str(line.amount_cents))
            _amount(p, "DeclaratieBedrag", line.signed_cents)
        ET.indent(root, space="  ")
        data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        return data + b"\n"


def _text(parent: ET.Element, tag: str, value: str) -> None:
    ET.SubElement(parent, tag).text = value


def _amount(parent: ET.Element, tag: str, signed_cents: int) -> None:
    element = ET.SubElement(parent, tag)
    _text(element, "Bedrag", str(abs(signed_cents)))
    direction = Direction.CREDIT if signed_cents < 0 else Direction.DEBIT
    _text(element, "DebetCredit", direction.value)


def declaration_files(
    lines: Iterable[OutLine],
    senders: Mapping[int, Sender],
    municipality_codes: Mapping[int, str],
    created_on: dt.date,
) -> list[DeclarationFile]:
    """Group a run's lines per declaring provider (the allocation holder), municipality and
    month of the product period; credits come before the debit that corrects them."""
    grouped: dict[tuple[int, int, tuple[int, int]], list[OutLine]] = defaultdict(list)
    for line in lines:
        grouped[(line.holder_id, line.municipality_id, (line.start.year, line.start.month))].append(
            line
        )
    files = [
        DeclarationFile(
            sender=senders[holder],
            municipality_code=municipality_codes[municipality],
            month=month,
            lines=tuple(sorted(group, key=lambda x: x.sort_key)),
            created_on=created_on,
        )
        for (holder, municipality, month), group in grouped.items()
    ]
    files.sort(key=lambda f: (f.sender.agb_code, f.municipality_code, f.month))
    return files


@dataclass(frozen=True)
class TotalsDifference:
    """Where the provider's own figure differs from the arrangement's (None = file total)."""

    allocation_number: str | None
    ours_cents: int
    theirs_cents: int

    @property
    def difference_cents(self) -> int:
        return self.theirs_cents - self.ours_cents


def check_own_totals(
    file: DeclarationFile,
    own_total_cents: int,
    own_per_allocation: Mapping[str, int] | None = None,
) -> list[TotalsDifference]:
    """Compare the totals a provider's own system computed with this file, which follows the
    allocations and contract tariffs. Empty means they agree to the cent."""
    differences: list[TotalsDifference] = []
    if own_per_allocation is not None:
        ours: dict[str, int] = defaultdict(int)
        for line in file.lines:
            ours[line.allocation_number] += line.signed_cents
        for number in sorted(set(ours) | set(own_per_allocation)):
            mine, theirs = ours.get(number, 0), own_per_allocation.get(number, 0)
            if mine != theirs:
                differences.append(TotalsDifference(number, mine, theirs))
    if own_total_cents != file.total_cents:
        differences.append(TotalsDifference(None, file.total_cents, own_total_cents))
    return differences
