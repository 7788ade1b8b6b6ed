"""The kassier's ledger (kassiersadministratie): pure, no database.

In the kassier model the kassier declares every line under its allocations to the municipality
and settles internally: of each sub-provider's line it keeps its margin (opslag) and owes the
provider the rest; its own lines it keeps whole. Every split is made per line in whole cents, so
the ledger balances to the cent by construction:

    what the municipality owes the kassier = what the kassier keeps + what it owes each provider
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from keerpunt.settlement.declaration import OutLine, SubProviderAgreement
from keerpunt.settlement.rules import DateRange

__all__ = [
    "AgreementIndex",
    "KassierLedger",
    "LedgerEntry",
    "LineMargin",
    "MissingAgreement",
    "agreement_index",
    "kassier_ledger",
    "ledger_from_margins",
    "line_margin",
]


class MissingAgreement(LookupError):
    """A sub-provider's line has no agreement with the kassier for its period. Acceptance
    rejects such lines, so this means the agreements changed after the line was accepted."""


@dataclass(frozen=True)
class LedgerEntry:
    """One line split: ``gross`` from the municipality = ``margin`` kept + ``net`` to pay on.
    Credits are negative throughout."""

    delivery_id: int
    provider_id: int
    municipality_id: int
    start: dt.date
    gross_cents: int
    margin_cents: int
    net_cents: int


@dataclass(frozen=True)
class KassierLedger:
    kassier_id: int
    entries: tuple[LedgerEntry, ...]

    @property
    def municipality_owes(self) -> dict[int, int]:
        """Per municipality, what it owes the kassier (sum of gross)."""
        owed: dict[int, int] = defaultdict(int)
        for e in self.entries:
            owed[e.municipality_id] += e.gross_cents
        return dict(sorted(owed.items()))

    @property
    def keeps_cents(self) -> int:
        """The kassier's margins plus its own lines."""
        return sum(e.margin_cents for e in self.entries)

    @property
    def owes(self) -> dict[int, int]:
        """Per sub-provider, what the kassier owes it (negative: the provider owes back)."""
        owed: dict[int, int] = defaultdict(int)
        for e in self.entries:
            if e.provider_id != self.kassier_id:
                owed[e.provider_id] += e.net_cents
        return dict(sorted(owed.items()))

    @property
    def balanced(self) -> bool:
        return sum(self.municipality_owes.values()) == self.keeps_cents + sum(self.owes.values())


AgreementIndex = dict[tuple[int, int], list[SubProviderAgreement]]


def agreement_index(agreements: Iterable[SubProviderAgreement]) -> AgreementIndex:
    """The agreements per (kassier, provider), in the order given: looked up once per line."""
    index: AgreementIndex = defaultdict(list)
    for g in agreements:
        index[g.kassier_id, g.provider_id].append(g)
    return dict(index)


@dataclass(frozen=True)
class LineMargin:
    """What the kassier keeps of one sub-provider's line (negative for a credit), and the
    agreement it was taken from."""

    margin_cents: int
    agreement: SubProviderAgreement


def line_margin(line: OutLine, index: AgreementIndex) -> LineMargin | None:
    """The margin of a line a sub-provider delivered under the kassier's allocation: from the
    agreement valid in the line's period, or None when there is none."""
    period = DateRange(line.start, line.end)
    for g in index.get((line.holder_id, line.provider_id), ()):
        if g.covers(period):
            return LineMargin(g.margin.of(line.signed_cents, line.volume), g)
    return None


def ledger_from_margins(
    kassier_id: int, lines: Iterable[tuple[OutLine, int | None]]
) -> KassierLedger:
    """The kassier's ledger from each line and its margin already worked out (as stored with
    a closed run): its own lines it keeps whole; a sub-provider's line without a margin
    (None) means there was no agreement for it."""
    entries: list[LedgerEntry] = []
    for line, stored in lines:
        if line.holder_id != kassier_id:
            continue
        gross = line.signed_cents
        if line.provider_id == kassier_id:
            margin = gross
        elif stored is None:
            raise MissingAgreement(f"delivery {line.delivery_id}")
        else:
            margin = stored
        entries.append(
            LedgerEntry(
                delivery_id=line.delivery_id,
                provider_id=line.provider_id,
                municipality_id=line.municipality_id,
                start=line.start,
                gross_cents=gross,
                margin_cents=margin,
                net_cents=gross - margin,
            )
        )
    return KassierLedger(kassier_id, tuple(entries))


def kassier_ledger(
    kassier_id: int, lines: Iterable[OutLine], agreements: Iterable[SubProviderAgreement]
) -> KassierLedger:
    """Split every line the kassier declares (its allocations) into what it keeps and what it
    owes the delivering provider, with the margin of the agreement valid in the line's period."""
    index = agreement_index(g for g in agreements if g.kassier_id == kassier_id)

    def margin(line: OutLine) -> int | None:
        if line.provider_id == kassier_id:
            return None
        found = line_margin(line, index)
        return None if found is None else found.margin_cents

    return ledger_from_margins(
        kassier_id, ((x, margin(x)) for x in lines if x.holder_id == kassier_id)
    )
