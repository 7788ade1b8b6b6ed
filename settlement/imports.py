"""Importing contracts, allocations and deliveries from a file (inlezen uit CSV of Excel).

A file is a table with a header row: CSV (UTF-8 with or without BOM, or Windows-1252 as Dutch
Excel saves "CSV"; separated by ``;`` as Dutch Excel writes it, or by ``,``) or XLSX (the
first sheet). Column names follow the fields of issue #5; Dutch and English names are both
understood (:data:`COLUMNS`). Money is euros
("120,50", "1.234,56", "120.50") read exactly into cents, never through a float; dates are ISO
(2026-07-31) or Dutch (31-7-2026).

A file is all or nothing: every bad row is reported with its row number as Excel shows it (the
header is row 1) and a reason a finance clerk understands, and a file with any bad row imports
nothing. Deliveries pass exactly the acceptance rules of entry in the screen
(:func:`keerpunt.settlement.declaration.accept_lines`).

The reading and checking of a row is pure; :func:`import_file` checks against the database and
writes, inside the caller's unit of work (it never commits).
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import hashlib
import io
import itertools
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from keerpunt.platform import audit
from keerpunt.platform.db import utcnow
from keerpunt.platform.errors import DomainError, NotFound
from keerpunt.platform.i18n import N_, gettext
from keerpunt.platform.models import Case, Organisation, OrgKind, User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.access import check_finance_access, check_settlement_access
from keerpunt.settlement.declaration import (
    Allocation,
    Delivery,
    Frequency,
    Rejection,
    Variant,
    accept_lines,
    check_allocation,
    check_delivery_draft,
)
from keerpunt.settlement.models import Allocation as AllocationRow
from keerpunt.settlement.models import Contract
from keerpunt.settlement.models import Delivery as DeliveryRow
from keerpunt.settlement.models import SubProviderAgreement as AgreementRow
from keerpunt.settlement.records import (
    REJECTION_FIELD,
    allocation_terms,
    contract_terms,
    delivery_terms,
    insert_deliveries,
    store_contract,
    sub_provider_terms,
)
from keerpunt.settlement.rules import (
    UNITS,
    ContractDraft,
    DateRange,
    check_contract_draft,
    find_overlap,
    parse_date,
)

__all__ = [
    "COLUMNS",
    "ENCODING_LABELS",
    "Column",
    "Encoding",
    "ImportKind",
    "ImportRejected",
    "ImportResult",
    "RowError",
    "Table",
    "import_as",
    "import_file",
    "import_page",
    "parse_money",
    "read_allocation_fields",
    "read_as_line",
    "read_table",
]


class ImportKind(enum.StrEnum):
    CONTRACTS = "contracts"  # contracttarieven
    ALLOCATIONS = "allocations"  # toewijzingen
    DELIVERIES = "deliveries"  # geleverde zorg


# ---- errors ----


@dataclass(frozen=True)
class RowError:
    """One problem in one row (and column) of the file, in words for a finance clerk.

    ``message`` is a Dutch message id filled in with ``params``; ``rejection``, when set, is the
    acceptance rule the line breaks (its own reason follows the message)."""

    row: int
    column: str | None  # the column's key (see COLUMNS), or None for the whole row or file
    message: str
    params: Mapping[str, str] = field(default_factory=dict)
    rejection: Rejection | None = None

    def text(self) -> str:
        """The reason in the current language."""
        own = gettext(self.message) % dict(self.params) if self.message else ""
        if self.rejection is None:
            return own
        return f"{own} {self.rejection.text()}".strip()


class ImportRejected(DomainError):
    """The file has bad rows; nothing was imported. ``errors`` lists every one."""

    status_code = 422
    message = N_("Het bestand is niet ingelezen, want er staan fouten in. Er is niets opgeslagen.")

    def __init__(self, errors: Iterable[RowError], kind: ImportKind | None = None) -> None:
        super().__init__()
        self.encoding: Encoding | None = None  # how the file was read, once it was
        order = {c.key: i for i, c in enumerate(COLUMNS[kind])} if kind else {}
        # Per row in the order of the columns; the whole row (no column) last.
        self.errors = tuple(
            sorted(errors, key=lambda e: (e.row, order.get(e.column or "", len(order))))
        )


class _Bad(Exception):
    """A field that cannot be read: the message id and its parameters."""

    def __init__(self, message: str, **params: str) -> None:
        super().__init__(message)
        self.message = message
        self.params = params


# ---- columns ----


@dataclass(frozen=True)
class Column:
    """A column of an import file: its key, whether it must be there, its name as shown (the
    first Dutch one) and every name it is recognised by (case, spaces, accents and punctuation
    do not matter)."""

    key: str
    required: bool
    names: tuple[str, ...]  # Dutch first, then English

    @property
    def label(self) -> str:
        return self.names[0]


_PROVIDER = ("aanbieder", "zorgaanbieder", "agb-code", "provider")
_PRODUCT_CATEGORY = ("productcategorie", "categorie", "product category", "category")
_PRODUCT_CODE = ("productcode", "product", "code")
_UNIT = ("eenheid", "unit")

COLUMNS: Mapping[ImportKind, tuple[Column, ...]] = {
    ImportKind.CONTRACTS: (
        Column("provider", True, _PROVIDER),
        Column("product_category", True, _PRODUCT_CATEGORY),
        Column("product_code", True, _PRODUCT_CODE),
        Column("description", False, ("omschrijving", "description")),
        Column("unit", True, _UNIT),
        Column("tariff", True, ("tarief", "prijs", "tariff", "price")),
        Column("valid_from", True, ("geldig vanaf", "ingangsdatum", "valid from", "from")),
        Column("valid_to", False, ("geldig tot en met", "geldig tot", "einddatum", "valid to", "to")),  # noqa: E501
    ),
    ImportKind.ALLOCATIONS: (
        Column("number", True, ("toewijzingnummer", "toewijzingsnummer", "nummer", "number", "allocation number")),  # noqa: E501
        Column("case", True, ("casus", "case", "pseudoniem", "pseudonym")),
        Column("provider", True, _PROVIDER),
        Column("municipality", True, ("gemeente", "cbs-code", "municipality")),
        Column("variant", True, ("soort", "variant", "toewijzingsvariant", "kind")),
        Column("product_category", False, _PRODUCT_CATEGORY),
        Column("product_code", False, _PRODUCT_CODE),
        Column("volume", False, ("omvang", "aantal", "volume")),
        Column("unit", False, _UNIT),
        Column("frequency", False, ("frequentie", "frequency")),
        Column("budget", False, ("budget",)),
        Column("start", True, ("begindatum", "ingangsdatum", "van", "start", "start date")),
        Column("end", True, ("einddatum", "tot en met", "tot", "end", "end date")),
    ),
    ImportKind.DELIVERIES: (
        Column("provider", False, _PROVIDER),
        Column("allocation_number", True, ("toewijzingnummer", "toewijzingsnummer", "toewijzing", "allocation number", "allocation")),  # noqa: E501
        Column("product_code", True, _PRODUCT_CODE),
        Column("start", True, ("begindatum", "eerste dag", "van", "start", "period start", "start date")),  # noqa: E501
        Column("end", True, ("einddatum", "laatste dag", "tot en met", "end", "period end", "end date")),  # noqa: E501
        Column("volume", True, ("aantal", "volume", "geleverd")),
    ),
}  # fmt: skip


def _norm(name: str) -> str:
    """A header as compared: lower case, no accents, only letters and digits."""
    folded = unicodedata.normalize("NFKD", name.casefold())
    return "".join(ch for ch in folded if ch.isascii() and ch.isalnum())


def column_label(kind: ImportKind, key: str | None) -> str:
    """The column's name as the page and the command show it."""
    return next((c.label for c in COLUMNS[kind] if c.key == key), "")


# ---- reading the table (pure) ----


class Encoding(enum.StrEnum):
    """How the bytes of a CSV file were read (shown with the result, so a wrong guess shows)."""

    UTF8 = "utf-8"
    CP1252 = "cp1252"  # Dutch Excel's "CSV (gescheiden door lijstscheidingsteken)"
    UTF16 = "utf-16"  # Excel's "Unicode-tekst"
    XLSX = "xlsx"  # a workbook: no text encoding to guess


ENCODING_LABELS: Mapping[Encoding, str] = {
    Encoding.UTF8: N_("UTF-8"),
    Encoding.CP1252: N_("Windows-1252 (Excel)"),
    Encoding.UTF16: N_("UTF-16 (Unicode-tekst)"),
    Encoding.XLSX: N_("Excel-werkmap (.xlsx)"),
}


@dataclass(frozen=True)
class Table:
    """The cells of a file as text; ``rows`` are (row number as Excel shows it, cells)."""

    header: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]
    encoding: Encoding = Encoding.UTF8


_XLSX_MAGIC = b"PK\x03\x04"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_TOO_MANY_ROWS = 200_000


# PostgreSQL's driver takes at most 32,767 parameters in one statement, and a file may have
# 200,000 rows: every lookup by the file's values goes in slices of this many.
_IN_SLICE = 10_000


def _slices(values: Iterable[Any]) -> Iterator[list[Any]]:
    """``values`` (sorted, so locks are always taken in one order) in slices of
    ``_IN_SLICE``; nothing for no values."""
    ordered = sorted(set(values))
    for start in range(0, len(ordered), _IN_SLICE):
        yield ordered[start : start + _IN_SLICE]


_MAX_COLUMNS = 100  # cells further right are not read


def read_table(data: bytes) -> Table:
    """Read a CSV or XLSX file into text cells. Raises :class:`ImportRejected` (row 1) when the
    file is empty or not a table we can read.

    A CSV file is read as UTF-8 when its bytes are UTF-8 (with or without BOM); otherwise as
    Windows-1252, which Dutch Excel writes for "CSV (gescheiden door lijstscheidingsteken)".
    The few bytes Windows-1252 has no character for are refused, not guessed at."""
    if data.startswith(_XLSX_MAGIC):
        return _read_xlsx(data)
    text, encoding = decode_csv(data)
    return replace(_read_csv(text), encoding=encoding)


def decode_csv(data: bytes) -> tuple[str, Encoding]:
    """The text of a CSV file and how it was read (see :func:`read_table`)."""
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16"), Encoding.UTF16
        except UnicodeDecodeError:
            pass  # not UTF-16 after all: try the others
    try:
        return data.decode("utf-8-sig"), Encoding.UTF8
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), Encoding.CP1252
    except UnicodeDecodeError as exc:
        raise _file_error(
            N_(
                "Het bestand is niet te lezen: het is geen UTF-8 en geen Windows-1252 (teken "
                "%(byte)s op regel %(line)s). Sla het in Excel op als 'CSV UTF-8 (door "
                "komma's gescheiden)' of als Excel-werkmap (.xlsx)."
            ),
            byte=f"0x{data[exc.start]:02X}",
            line=str(data.count(b"\n", 0, exc.start) + 1),
        ) from None


def _file_error(message: str, **params: str) -> ImportRejected:
    return ImportRejected([RowError(1, None, message, params)])


def _read_csv(text: str) -> Table:
    first = text.split("\n", 1)[0]
    delimiter = max((";", ",", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        records = [
            tuple(cell.strip() for cell in record[:_MAX_COLUMNS])
            for record in itertools.islice(reader, _TOO_MANY_ROWS + 2)
        ]
    except csv.Error:
        raise _file_error(N_("Het bestand is geen leesbare CSV.")) from None
    return _table(records)


def _read_xlsx(data: bytes) -> Table:
    import openpyxl  # only when a workbook comes in: it is a large import

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        raise _file_error(N_("Het bestand is geen leesbaar Excel-bestand (.xlsx).")) from None
    try:
        sheet = book.worksheets[0]
        # Streamed, and never more than one row past the limit: a small file can unpack into
        # a very large sheet.
        rows = sheet.iter_rows(max_col=_MAX_COLUMNS, values_only=True)
        records = [
            _trimmed([_cell_text(v) for v in r]) for r in itertools.islice(rows, _TOO_MANY_ROWS + 2)
        ]
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        raise _file_error(N_("Het bestand is geen leesbaar Excel-bestand (.xlsx).")) from None
    finally:
        book.close()
    return replace(_table(records), encoding=Encoding.XLSX)


def _trimmed(cells: list[str]) -> tuple[str, ...]:
    while cells and not cells[-1]:
        cells.pop()
    return tuple(cells)


def _cell_text(value: Any) -> str:
    """An Excel cell as the text a clerk would have typed: a number exactly as Excel stored
    it (shortest form that reads back the same, so 120.5 stays "120.5"), a date as ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def _table(records: list[tuple[str, ...]]) -> Table:
    if not records or not any(records[0]):
        raise _file_error(N_("Het bestand is leeg, of de eerste rij heeft geen kolomnamen."))
    if len(records) > _TOO_MANY_ROWS + 1:  # the header and the rows
        raise _file_error(
            N_(
                "Het bestand heeft te veel rijen. Lees het in delen in van hoogstens %(max)s rijen."
            ),
            max=str(_TOO_MANY_ROWS),
        )
    rows = tuple((i, r) for i, r in enumerate(records[1:], start=2) if any(r))
    return Table(records[0], rows)


def map_columns(kind: ImportKind, header: Sequence[str]) -> tuple[dict[str, int], list[RowError]]:
    """Which cell holds which column; every unknown, doubled or missing column is an error
    (an unknown one may be a misspelt column whose values would otherwise be lost)."""
    by_name = {_norm(n): c for c in COLUMNS[kind] for n in c.names}
    found: dict[str, int] = {}
    errors: list[RowError] = []
    for i, name in enumerate(header):
        if not name.strip():
            continue
        column = by_name.get(_norm(name))
        if column is None:
            errors.append(
                RowError(
                    1,
                    None,
                    N_("De kolom '%(name)s' kennen we niet. Bekende kolommen: %(known)s."),
                    {"name": name.strip(), "known": ", ".join(c.label for c in COLUMNS[kind])},
                )
            )
        elif column.key in found:
            errors.append(
                RowError(
                    1,
                    column.key,
                    N_("De kolom '%(name)s' staat er twee keer in."),
                    {"name": column.label},
                )
            )
        else:
            found[column.key] = i
    for column in COLUMNS[kind]:
        if column.required and column.key not in found:
            errors.append(
                RowError(
                    1, column.key, N_("De kolom '%(name)s' ontbreekt."), {"name": column.label}
                )
            )
    return found, errors


# ---- reading fields (pure) ----

_PLAIN_NUMBER = re.compile(r"\d{1,15}(?:\.\d{1,15})?", re.ASCII)
_GROUPED = re.compile(r"\d{1,3}(?:[.,]\d{3})+", re.ASCII)
BAD_MONEY = N_("Vul een bedrag in euro's in, zoals 120,00 of 1.234,56.")
TOO_PRECISE = N_("Een bedrag heeft hoogstens 2 cijfers achter de komma (hele centen).")


def parse_money(text: str) -> int:
    """Euros as written in a file, exactly as integer cents (Decimal, never float).

    The last comma or point followed by digits is the decimal sign when the other sign groups
    thousands ("1.234,56", "1,234.56"); one sign alone is a decimal sign ("120,5", "120.50"),
    so "1.234" is 1,234 euro and is refused for its 3 decimals rather than guessed at."""
    s = text.strip().removeprefix("€").removesuffix("€").replace(" ", "").replace("\u00a0", "")
    if not s or len(s) > 24:
        raise _Bad(BAD_MONEY)
    if s.startswith("-"):
        raise _Bad(N_("Een bedrag kan niet negatief zijn."))
    last = max(s.rfind(","), s.rfind("."))
    if last >= 0 and s[last] in s[:last]:  # one sign only, several times: thousands
        if not _GROUPED.fullmatch(s):
            raise _Bad(BAD_MONEY)
        s = s.replace(",", "").replace(".", "")
    elif last >= 0:
        whole, frac = s[:last], s[last + 1 :]
        if whole and any(ch in whole for ch in ",."):
            if not _GROUPED.fullmatch(whole):
                raise _Bad(BAD_MONEY)
            whole = whole.replace(",", "").replace(".", "")
        s = f"{whole or '0'}.{frac}"
    if not _PLAIN_NUMBER.fullmatch(s):
        raise _Bad(BAD_MONEY)
    try:
        amount = Decimal(s)
    except InvalidOperation:
        raise _Bad(BAD_MONEY) from None
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise _Bad(TOO_PRECISE)
    return int(cents)


def _day(text: str) -> dt.date:
    day = parse_date(text.strip())
    if day is None:
        raise _Bad(N_("Vul een datum in zoals 31-12-2026 of 2026-12-31."))
    return day


_WHOLE = re.compile(r"\d{1,9}", re.ASCII)


def _whole(text: str) -> int:
    if not _WHOLE.fullmatch(text.strip()) or int(text) <= 0:
        raise _Bad(N_("Het aantal moet een heel getal groter dan 0 zijn."))
    return int(text)


def _unit(text: str) -> str:
    code = text.strip().zfill(2) if text.strip().isdigit() else text.strip()
    if code not in UNITS:
        raise _Bad(N_("Vul een eenheid in als iJw-code: %(codes)s."), codes=", ".join(UNITS.keys()))
    return code


def _category(text: str) -> str:
    s = text.strip()
    return s.zfill(2) if s.isdigit() and len(s) == 1 else s


_VARIANTS = {
    _norm(name): variant
    for variant, names in {
        Variant.SPECIFIC: ("specific", "specifiek", "inspanningsgericht specifiek"),
        Variant.ASPECIFIC: ("aspecific", "aspecifiek", "inspanningsgericht aspecifiek"),
        Variant.GENERIC: ("generic", "generiek"),
        Variant.OUTPUT: ("output", "outputgericht", "output based"),
    }.items()
    for name in names
}
_FREQUENCIES = {
    _norm(name): frequency
    for frequency, names in {
        Frequency.DAY: ("1", "dag", "per dag", "day"),
        Frequency.WEEK: ("2", "week", "per week"),
        Frequency.MONTH: ("4", "maand", "per maand", "month"),
        Frequency.TOTAL: ("6", "totaal", "in totaal", "total"),
    }.items()
    for name in names
}


def _variant(text: str) -> Variant:
    found = _VARIANTS.get(_norm(text))
    if found is None:
        raise _Bad(N_("Vul als soort in: specifiek, aspecifiek, generiek of outputgericht."))
    return found


def _frequency(text: str) -> Frequency:
    found = _FREQUENCIES.get(_norm(text))
    if found is None:
        raise _Bad(N_("Vul als frequentie 1 (dag), 2 (week), 4 (maand) of 6 (totaal) in."))
    return found


class _Row:
    """One data row: its cells by column key, and the errors found while reading them."""

    def __init__(self, number: int, cells: dict[str, str]) -> None:
        self.number = number
        self.cells = cells
        self.errors: list[RowError] = []

    def text(self, key: str) -> str:
        return self.cells.get(key, "").strip()

    def read(self, key: str, parse: Any, *, optional: bool = False) -> Any:
        raw = self.text(key)
        if not raw:
            if optional:
                return None
            self.error(key, N_("Dit vak is leeg. Vul het in."))
            return None
        try:
            return parse(raw)
        except _Bad as bad:
            self.error(key, bad.message, **bad.params)
            return None

    def error(self, key: str | None, message: str, **params: str) -> None:
        self.errors.append(RowError(self.number, key, message, params))


def _rows(kind: ImportKind, table: Table) -> tuple[list[_Row], list[RowError]]:
    positions, errors = map_columns(kind, table.header)
    if errors:
        return [], errors
    rows = [
        _Row(number, {key: cells[i] if i < len(cells) else "" for key, i in positions.items()})
        for number, cells in table.rows
    ]
    if not rows:
        errors.append(RowError(1, None, N_("Het bestand heeft geen regels onder de kolomnamen.")))
    return rows, errors


# ---- the rows of each kind, read and checked on their own (pure) ----


@dataclass(frozen=True)
class ContractLine:
    row: int
    provider: str
    draft: ContractDraft  # provider_id 0 until resolved
    ok: bool = True  # False: the row has errors of its own (its references are still checked)


@dataclass(frozen=True)
class AllocationLine:
    row: int
    case: str
    provider: str
    municipality: str
    allocation: Allocation  # case, provider and municipality 0 until resolved
    ok: bool = True


@dataclass(frozen=True)
class DeliveryLine:
    row: int
    provider: str
    allocation_number: str
    product_code: str
    start: dt.date
    end: dt.date
    volume: int
    ok: bool = True


def _field_errors(row: _Row, errors: Mapping[str, str], rename: Mapping[str, str]) -> None:
    seen = {e.column for e in row.errors}
    for name, message in errors.items():
        key = rename.get(name, name)
        if key not in seen:
            row.error(key, message)


def read_contracts(table: Table) -> tuple[list[ContractLine], list[RowError]]:
    rows, errors = _rows(ImportKind.CONTRACTS, table)
    lines: list[ContractLine] = []
    for row in rows:
        row.read("provider", str)
        tariff = row.read("tariff", parse_money)
        unit = row.read("unit", _unit)
        valid_from = row.read("valid_from", _day)
        valid_to = row.read("valid_to", _day, optional=True)
        category = _category(row.text("product_category"))
        code = row.text("product_code").upper()
        draft = ContractDraft(
            provider_id=0,
            product_category=category,
            product_code=code,
            description=row.text("description") or code,
            unit=unit or "",
            tariff_cents=tariff if tariff is not None else 0,
            valid_from=valid_from or dt.date.min,
            valid_to=valid_to,
        )
        field_errors = check_contract_draft(draft)
        if unit is None:
            field_errors.pop("unit", None)
        if valid_from is None:
            field_errors.pop("valid_to", None)
        _field_errors(row, field_errors, {})
        errors += row.errors
        lines.append(ContractLine(row.number, row.text("provider"), draft, not row.errors))
    return lines, errors


def _allocation_fields(row: _Row) -> Allocation:
    """The allocation's own fields (no case, provider or municipality yet: ids 0)."""
    variant = row.read("variant", _variant)
    volume = row.read("volume", _whole, optional=True)
    unit = row.read("unit", _unit, optional=True)
    frequency = row.read("frequency", _frequency, optional=True)
    budget = row.read("budget", parse_money, optional=True)
    start = row.read("start", _day)
    end = row.read("end", _day)
    allocation = Allocation(
        number=row.text("number"),
        case_id=0,
        provider_id=0,
        municipality_id=0,
        variant=variant or Variant.GENERIC,
        start=start or dt.date.min,
        end=end or dt.date.max,
        product_category=_category(row.text("product_category")) or None,
        product_code=row.text("product_code").upper() or None,
        volume=volume,
        unit=unit,
        frequency=frequency,
        budget_cents=budget,
    )
    if variant is not None:
        _field_errors(row, check_allocation(allocation), {"budget_cents": "budget"})
    return allocation


def read_allocation_fields(values: Mapping[str, str]) -> tuple[Allocation, dict[str, str]]:
    """An allocation's own fields from a form, read as a file row is (the same words, money
    and dates); the errors per field are in the current language."""
    row = _Row(0, dict(values))
    allocation = _allocation_fields(row)
    errors: dict[str, str] = {}
    for e in row.errors:
        errors.setdefault(e.column or "", e.text())
    return allocation, errors


def read_allocations(table: Table) -> tuple[list[AllocationLine], list[RowError]]:
    rows, errors = _rows(ImportKind.ALLOCATIONS, table)
    lines: list[AllocationLine] = []
    for row in rows:
        for key in ("number", "case", "provider", "municipality"):
            row.read(key, str)
        allocation = _allocation_fields(row)
        errors += row.errors
        lines.append(
            AllocationLine(
                row.number,
                row.text("case"),
                row.text("provider"),
                row.text("municipality"),
                allocation,
                not row.errors,
            )
        )
    return lines, errors


def read_deliveries(table: Table) -> tuple[list[DeliveryLine], list[RowError]]:
    rows, errors = _rows(ImportKind.DELIVERIES, table)
    lines: list[DeliveryLine] = []
    for row in rows:
        row.read("allocation_number", str)
        code = row.text("product_code").upper()
        if not code:
            row.error("product_code", N_("Dit vak is leeg. Vul het in."))
        elif not re.fullmatch(r"[0-9A-Z]{5}", code):
            row.error("product_code", N_("Vul een productcode van 5 tekens in, zoals 45A52."))
        start = row.read("start", _day)
        end = row.read("end", _day)
        volume = row.read("volume", _whole)
        if start is not None and end is not None:
            _field_errors(row, check_delivery_draft(start, end, volume or 1), {})
        errors += row.errors
        lines.append(
            DeliveryLine(
                row.number,
                row.text("provider"),
                row.text("allocation_number"),
                code,
                start or dt.date.min,
                end or dt.date.min,
                volume or 0,
                not row.errors,
            )
        )
    return lines, errors


# ---- with the database ----


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote: how many rows of which kind, from which file."""

    kind: ImportKind
    count: int
    filename: str
    sha256: str
    encoding: Encoding = Encoding.UTF8


class _Orgs:
    """Organisations by AGB or CBS code and by name (as a clerk writes them in a file)."""

    def __init__(self, orgs: Iterable[Organisation]) -> None:
        self.by_key: dict[tuple[str, str], Organisation] = {}
        for o in orgs:
            self.by_key[(o.kind, _norm(o.name))] = o
            for code in (o.agb_code, o.cbs_code):
                if code:
                    self.by_key.setdefault((o.kind, code.strip()), o)

    def find(self, kind: str, text: str) -> Organisation | None:
        return self.by_key.get((kind, text.strip())) or self.by_key.get((kind, _norm(text)))


async def _orgs(uow: UnitOfWork) -> _Orgs:
    return _Orgs(await uow.db.scalars(select(Organisation)))


UNKNOWN_PROVIDER = N_("Er is geen aanbieder met naam of AGB-code '%(value)s'.")


async def import_file(
    uow: UnitOfWork, kind: ImportKind, data: bytes, filename: str
) -> ImportResult:
    """Import a file of one kind, all or nothing (inlezen). Raises :class:`ImportRejected`
    listing every bad row when any row is bad; then nothing is written. Contracts and
    allocations are for the penvoerder's finance; deliveries also for a provider's staff, for
    its own care only."""
    if kind is ImportKind.DELIVERIES:
        org, sees_all = await check_settlement_access(uow)
    else:
        org, sees_all = await check_finance_access(uow), True
    table = read_table(data)
    digest = hashlib.sha256(data).hexdigest()
    try:
        if kind is ImportKind.CONTRACTS:
            count = await _import_contracts(uow, table)
        elif kind is ImportKind.ALLOCATIONS:
            count = await _import_allocations(uow, table, digest)
        else:
            count = await _import_deliveries(uow, table, org, sees_all)
    except ImportRejected as exc:
        exc.encoding = table.encoding  # a wrong guess may be why a name is not found
        raise
    await audit.record(
        uow.db,
        uow.who,
        f"settlement.import.{kind.value}",
        purpose="settlement",
        detail=(
            f"rows={count} sha256={digest} encoding={table.encoding.value} "
            f"file={_safe_name(filename)}"
        ),
    )
    return ImportResult(kind, count, filename, digest, table.encoding)


def _safe_name(filename: str) -> str:
    # The file name goes in the audit log: keep it short and on one line.
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch if ch.isprintable() and ch != " " else "_" for ch in base)[:100]


async def _import_contracts(uow: UnitOfWork, table: Table) -> int:
    lines, errors = read_contracts(table)
    orgs = await _orgs(uow)
    resolved: list[tuple[ContractLine, Organisation]] = []
    for line in lines:
        provider = orgs.find(OrgKind.PROVIDER, line.provider)
        if provider is None:
            errors.append(
                RowError(line.row, "provider", UNKNOWN_PROVIDER, {"value": line.provider})
            )
        elif line.ok:
            resolved.append((line, provider))
    # Lock the providers, as one contract entered in the screen does, in one order.
    provider_ids = sorted({p.id for _, p in resolved})
    for ids in _slices(provider_ids):
        await uow.db.execute(
            select(Organisation.id).where(Organisation.id.in_(ids)).with_for_update()
        )
    existing = [
        contract_terms(c)
        for ids in _slices(provider_ids)
        for c in await uow.db.scalars(select(Contract).where(Contract.provider_id.in_(ids)))
    ]
    taken: dict[tuple[int, str], list[tuple[int, ContractDraft]]] = {}
    for line, provider in resolved:
        d = line.draft
        key = (provider.id, d.product_code)
        mine = [c for c in existing if (c.provider_id, c.product_code) == key]
        earlier = next(
            (
                row
                for row, other in taken.get(key, [])
                if DateRange(other.valid_from, other.valid_to or dt.date.max).clip(
                    DateRange(d.valid_from, d.valid_to or dt.date.max)
                )
            ),
            None,
        )
        if find_overlap(mine, d.valid_from, d.valid_to):
            errors.append(
                RowError(
                    line.row,
                    "valid_from",
                    N_(
                        "Er is al een tarief voor dit product van deze aanbieder in deze "
                        "periode. Kies een periode die daarna begint, of zet eerst een "
                        "einddatum bij het oude tarief."
                    ),
                )
            )
        elif earlier is not None:
            errors.append(
                RowError(
                    line.row,
                    "valid_from",
                    N_(
                        "Deze periode overlapt met het tarief in rij %(row)s (zelfde aanbieder "
                        "en product)."
                    ),
                    {"row": str(earlier)},
                )
            )
        taken.setdefault(key, []).append((line.row, d))
    if errors:
        raise ImportRejected(errors, ImportKind.CONTRACTS)
    for line, provider in resolved:
        await store_contract(
            uow, replace(line.draft, provider_id=provider.id), note=f"via=import row={line.row}"
        )
    return len(resolved)


async def _import_allocations(uow: UnitOfWork, table: Table, digest: str) -> int:
    lines, errors = read_allocations(table)
    orgs = await _orgs(uow)
    pseudonyms = {line.case.strip() for line in lines}
    cases = {
        p: case_id
        for some in _slices(pseudonyms)
        for case_id, p in await uow.db.execute(
            select(Case.id, Case.pseudonym).where(Case.pseudonym.in_(some))
        )
    }
    numbers = {line.allocation.number for line in lines}
    taken = {
        number
        for some in _slices(numbers)
        for number in await uow.db.scalars(
            select(AllocationRow.number).where(AllocationRow.number.in_(some))
        )
    }
    first_row: dict[str, int] = {}
    ready: list[tuple[int, Allocation]] = []
    for line in lines:
        bad: list[RowError] = []
        provider = orgs.find(OrgKind.PROVIDER, line.provider)
        if provider is None:
            bad.append(RowError(line.row, "provider", UNKNOWN_PROVIDER, {"value": line.provider}))
        municipality = orgs.find(OrgKind.MUNICIPALITY, line.municipality)
        if municipality is None:
            bad.append(
                RowError(
                    line.row,
                    "municipality",
                    N_("Er is geen gemeente met naam of CBS-code '%(value)s'."),
                    {"value": line.municipality},
                )
            )
        case_id = cases.get(line.case.strip())
        if case_id is None:
            bad.append(
                RowError(
                    line.row, "case", N_("Er is geen casus '%(value)s'."), {"value": line.case}
                )
            )
        number = line.allocation.number
        if number in taken:
            bad.append(
                RowError(
                    line.row,
                    "number",
                    N_("Er is al een toewijzing met nummer %(number)s."),
                    {"number": number},
                )
            )
        elif number in first_row:
            bad.append(
                RowError(
                    line.row,
                    "number",
                    N_("Toewijzingnummer %(number)s staat ook in rij %(row)s."),
                    {"number": number, "row": str(first_row[number])},
                )
            )
        first_row.setdefault(number, line.row)
        errors += bad
        if not bad and line.ok:
            assert provider is not None and municipality is not None and case_id is not None
            ready.append(
                (line.row, _with_ids(line.allocation, case_id, provider.id, municipality.id))
            )
    if errors:
        raise ImportRejected(errors, ImportKind.ALLOCATIONS)
    await _store_allocations(uow, ready, digest)
    return len(ready)


async def _store_allocations(
    uow: UnitOfWork, ready: Sequence[tuple[int, Allocation]], digest: str
) -> None:
    """Write checked allocations in one batch: one INSERT for the rows and one for their
    audit (the same row per allocation as entry in the screen writes, with the file row and
    the file's SHA-256), whatever the number of rows."""
    values = [
        {
            "number": a.number,
            "case_id": a.case_id,
            "provider_id": a.provider_id,
            "municipality_id": a.municipality_id,
            "variant": a.variant.value,
            "product_category": a.product_category,
            "product_code": a.product_code,
            "volume": a.volume,
            "unit": a.unit,
            "frequency": a.frequency.value if a.frequency else None,
            "budget_cents": a.budget_cents,
            "start_date": a.start,
            "end_date": a.end,
            "arrangement_line_id": None,
            "created_by_id": uow.who.user_id,
            "created_at": utcnow(),
        }
        for _, a in ready
    ]
    try:
        # One INSERT ... RETURNING per batch of rows; the numbers are unique, so they tell
        # which id each allocation got (the order of RETURNING is not promised).
        written = await uow.db.execute(
            insert(AllocationRow).returning(AllocationRow.number, AllocationRow.id), values
        )
        id_of: dict[str, int] = {number: id_ for number, id_ in written}
    except IntegrityError:
        # Only something saved since the check above (someone else saved the same number at
        # the same moment) gets here; the transaction rolls back and nothing is written.
        changed = RowError(1, None, _CHANGED_MEANWHILE)
        raise ImportRejected([changed], ImportKind.ALLOCATIONS) from None
    await audit.record_many(
        uow.db,
        [
            audit.Entry(
                uow.who,
                "settlement.allocation.add",
                case_id=a.case_id,
                purpose="settlement",
                detail=(
                    f"allocation={id_of[a.number]} number={a.number} provider={a.provider_id} "
                    f"municipality={a.municipality_id} variant={a.variant.value} "
                    f"from={a.start} to={a.end} via=import row={file_row} sha256={digest}"
                ),
            )
            for file_row, a in ready
        ],
    )


_CHANGED_MEANWHILE = N_(
    "Terwijl dit bestand werd ingelezen, heeft iemand anders iets opgeslagen dat botst met "
    "dit bestand (bijvoorbeeld een toewijzing met hetzelfde nummer). Er is niets ingelezen. "
    "Lees het bestand opnieuw in: u ziet dan welke rij het is."
)


def _with_ids(a: Allocation, case_id: int, provider_id: int, municipality_id: int) -> Allocation:
    return replace(a, case_id=case_id, provider_id=provider_id, municipality_id=municipality_id)


def _period(start: dt.date, end: dt.date) -> str:
    return f"{start.day}-{start.month}-{start.year} t/m {end.day}-{end.month}-{end.year}"


async def _import_deliveries(
    uow: UnitOfWork, table: Table, org: Organisation, sees_all: bool
) -> int:
    lines, errors = read_deliveries(table)
    orgs = await _orgs(uow)
    providers: dict[int, int] = {}  # row -> provider id
    for line in lines:
        if not line.provider:
            if sees_all:
                errors.append(
                    RowError(
                        line.row,
                        "provider",
                        N_("Vul de aanbieder in die de zorg leverde (naam of AGB-code)."),
                    )
                )
            else:
                providers[line.row] = org.id
            continue
        provider = orgs.find(OrgKind.PROVIDER, line.provider)
        if provider is None:
            errors.append(
                RowError(line.row, "provider", UNKNOWN_PROVIDER, {"value": line.provider})
            )
        elif not sees_all and provider.id != org.id:
            errors.append(
                RowError(
                    line.row,
                    "provider",
                    N_("U kunt alleen zorg van uw eigen organisatie inlezen."),
                )
            )
        else:
            providers[line.row] = provider.id
    lines = [line for line in lines if line.row in providers and line.ok]
    numbers = sorted({line.allocation_number for line in lines})
    # Lock the allocations, in one order: two imports (or a clerk at the screen) must not
    # both fit the same volume or budget.
    allocation_rows = [
        row
        for some in _slices(numbers)
        for row in await uow.db.scalars(
            select(AllocationRow)
            .where(AllocationRow.number.in_(some))
            .order_by(AllocationRow.number)
            .with_for_update()
        )
    ]
    allocations = [allocation_terms(a) for a in allocation_rows]
    row_of_number = {a.number: a for a in allocation_rows}
    holders = {a.provider_id for a in allocations}
    contract_rows = [
        c
        for ids in _slices(holders)
        for c in await uow.db.scalars(select(Contract).where(Contract.provider_id.in_(ids)))
    ]
    contracts = [contract_terms(c) for c in contract_rows]
    agreements = [
        sub_provider_terms(g)
        for ids in _slices(holders)
        for g in await uow.db.scalars(select(AgreementRow).where(AgreementRow.kassier_id.in_(ids)))
    ]
    number_of = {a.id: a.number for a in allocation_rows}
    existing = [
        delivery_terms(d, number_of[d.allocation_id])
        for ids in _slices(number_of)
        for d in await uow.db.scalars(select(DeliveryRow).where(DeliveryRow.allocation_id.in_(ids)))
    ]

    # A duplicate: the same provider, allocation, product and period (dubbel ingevoerd).
    def key(p: int, number: str, code: str, start: dt.date, end: dt.date) -> tuple[Any, ...]:
        return (p, number, code, start, end)

    in_db = {
        key(d.provider_id, d.allocation_number, d.product_code, d.start, d.end): d for d in existing
    }
    in_file: dict[tuple[Any, ...], int] = {}
    next_id = max((d.id for d in existing), default=0)
    candidates: dict[int, tuple[DeliveryLine, Delivery]] = {}
    for line in lines:
        provider_id = providers[line.row]
        k = key(provider_id, line.allocation_number, line.product_code, line.start, line.end)
        if k in in_db:
            d = in_db[k]
            errors.append(
                RowError(
                    line.row,
                    None,
                    N_(
                        "Deze regel is al ingevoerd: toewijzing %(number)s, product %(product)s, "
                        "%(period)s (aantal %(volume)s). Een correctie voert u in het scherm in."
                    ),
                    {
                        "number": line.allocation_number,
                        "product": line.product_code,
                        "period": _period(d.start, d.end),
                        "volume": str(d.volume),
                    },
                )
            )
            continue
        if k in in_file:
            errors.append(
                RowError(
                    line.row,
                    None,
                    N_(
                        "Deze regel staat dubbel in het bestand: dezelfde aanbieder, toewijzing, "
                        "product en periode als rij %(row)s."
                    ),
                    {"row": str(in_file[k])},
                )
            )
            continue
        in_file[k] = line.row
        holder = row_of_number.get(line.allocation_number)
        category = next(
            (
                c.product_category
                for c in contract_rows
                if holder is not None
                and c.provider_id == holder.provider_id
                and c.product_code == line.product_code
            ),
            line.product_code[:2],
        )  # as entry in the screen takes it
        next_id += 1
        candidates[next_id] = (
            line,
            Delivery(
                id=next_id,
                provider_id=provider_id,
                allocation_number=line.allocation_number,
                product_category=category,
                product_code=line.product_code,
                start=line.start,
                end=line.end,
                volume=line.volume,
            ),
        )
    # The acceptance rules of entry in the screen, for all lines at once: a new line must be
    # accepted, and must not push a line accepted before over the allocation's limits.
    _, before = accept_lines(existing, allocations, contracts, agreements)
    _, after = accept_lines(
        [*existing, *(d for _, d in candidates.values())], allocations, contracts, agreements
    )
    was_rejected = {r.delivery.id for r in before}
    for rejection in after:
        d = rejection.delivery
        if d.id in was_rejected:
            continue
        if d.id in candidates:
            line = candidates[d.id][0]
            errors.append(
                RowError(line.row, REJECTION_FIELD[rejection.reason], "", rejection=rejection)
            )
            continue
        # A line entered before no longer fits because of this file: say so on every row of
        # the file under that allocation.
        for line, _d in candidates.values():
            if line.allocation_number == d.allocation_number:
                errors.append(
                    RowError(
                        line.row,
                        "volume",
                        N_(
                            "Met de regels uit dit bestand past een eerder ingevoerde regel "
                            "(%(period)s, aantal %(volume)s) niet meer:"
                        ),
                        {"period": _period(d.start, d.end), "volume": str(d.volume)},
                        rejection=rejection,
                    )
                )
    if errors:
        raise ImportRejected(errors, ImportKind.DELIVERIES)
    lines_in = list(candidates.values())
    new_ids = await insert_deliveries(
        uow, [(row_of_number[d.allocation_number].id, d) for _, d in lines_in]
    )
    # One audit row per case (the case's own trail shows what was added to it, by whom), with
    # every delivery and the file row it came from; the import itself gets one more row.
    per_case: dict[int, list[str]] = {}
    case_of = {a.id: a.case_id for a in allocation_rows}
    for (line, d), new_id in zip(lines_in, new_ids, strict=True):
        allocation_id = row_of_number[d.allocation_number].id
        per_case.setdefault(case_of[allocation_id], []).append(f"{new_id}:{line.row}")
    await audit.record_many(
        uow.db,
        [
            audit.Entry(
                uow.who,
                "settlement.delivery.import",
                case_id=case_id,
                purpose="settlement",
                detail=f"deliveries={len(items)} delivery:row={','.join(items)}",
            )
            for case_id, items in sorted(per_case.items())
        ],
    )
    return len(candidates)


@dataclass(frozen=True)
class ImportChoice:
    kind: ImportKind
    title: str  # message id
    columns: tuple[Column, ...]


_TITLES = {
    ImportKind.CONTRACTS: N_("Contracttarieven"),
    ImportKind.ALLOCATIONS: N_("Toewijzingen"),
    ImportKind.DELIVERIES: N_("Geleverde zorg"),
}


@dataclass(frozen=True)
class ImportPage:
    """What the viewer may import: everything for the penvoerder's finance, a provider only
    its own deliveries (``own_only``: the provider column may then be left out)."""

    choices: tuple[ImportChoice, ...]
    own_only: bool


async def import_page(uow: UnitOfWork) -> ImportPage:
    """The kinds of file the viewer may import, with their columns."""
    _, sees_all = await check_settlement_access(uow)
    kinds = list(ImportKind) if sees_all else [ImportKind.DELIVERIES]
    return ImportPage(
        tuple(ImportChoice(k, _TITLES[k], COLUMNS[k]) for k in kinds), own_only=not sees_all
    )


async def import_as(
    rt: Runtime, email: str, kind: ImportKind, data: bytes, filename: str
) -> ImportResult:
    """``keerpunt import KIND FILE --as EMAIL``: import in the name of a user (audited as
    them, with their rights), in one transaction."""
    async with rt.sessionmaker() as db:
        user = await db.scalar(select(User).where(User.email == email, User.active))
    if user is None:
        raise NotFound()
    who = staff_principal(user, session_id="cli")
    async with rt.unit_of_work(who) as uow:
        return await import_file(uow, kind, data, filename)


def read_as_line(encoding: Encoding) -> str:
    """How a CSV file was read, as a line for the command ("" for a workbook)."""
    if encoding is Encoding.XLSX:
        return ""
    return gettext(N_("Gelezen als %(encoding)s.")) % {
        "encoding": gettext(ENCODING_LABELS[encoding])
    }


def error_lines(kind: ImportKind, errors: Sequence[RowError]) -> Iterator[str]:
    """The errors as lines of text: "rij 3, kolom tarief: ..." in the current language."""
    for e in errors:
        where = gettext(N_("rij %(row)s")) % {"row": e.row}
        if e.column:
            where += ", " + gettext(N_("kolom %(column)s")) % {
                "column": column_label(kind, e.column)
            }
        yield f"{where}: {e.text()}"
