"""The consent rules as plain functions: who must consent, and which record wins.

Law (Jeugdwet 7.3.4/7.3.5/7.3.15, DOMAIN.md "Consent"): younger than 12 the parents with
authority or the guardian; 12 to 15 the youth and the parents; 16 and older the youth alone.
No consent is needed for help under a child-protection order, secure-care authorisation or
juvenile probation: the legal basis is recorded instead. Age is taken on the day of processing.
Precedence: the more specific record wins; an objection beats a consent of equal specificity.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "Disclosure",
    "LegalBasis",
    "RecordFacts",
    "age_on",
    "effective_decision",
    "required_consenters",
]


class LegalBasis(enum.StrEnum):
    CONSENT = "consent"  # toestemming (the normal case)
    CHILD_PROTECTION_ORDER = "child_protection_order"  # kinderbeschermingsmaatregel
    SECURE_CARE = "secure_care"  # machtiging gesloten jeugdhulp
    JUVENILE_PROBATION = "juvenile_probation"  # jeugdreclassering


class Disclosure(enum.IntEnum):
    """How much of a case a viewer sees. Ordered: a stricter level is smaller."""

    NOTHING = 0
    PSEUDONYMOUS = 1
    FULL = 2


def age_on(birth_date: dt.date, day: dt.date) -> int:
    """Age in whole years on ``day`` (a birthday counts from that day; 29 Feb on 28 Feb)."""
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def required_consenters(age: int, basis: LegalBasis = LegalBasis.CONSENT) -> frozenset[str]:
    """Who must consent, as case roles: "youth" and/or "parent" (parent also means guardian)."""
    if basis is not LegalBasis.CONSENT:
        return frozenset()
    if age < 12:
        return frozenset({"parent"})
    if age < 16:
        return frozenset({"youth", "parent"})
    return frozenset({"youth"})


@dataclass(frozen=True)
class RecordFacts:
    """What the precedence rule needs to know of one consent record."""

    record_id: int
    objection: bool
    recipient_org_id: int | None
    recipient_role: str | None

    @property
    def specificity(self) -> int:
        # a named organisation is more specific than a role, a role more than "everyone"
        if self.recipient_org_id is not None:
            return 2
        if self.recipient_role is not None:
            return 1
        return 0


def effective_decision(
    records: Iterable[RecordFacts],
    *,
    org_id: int | None,
    roles: frozenset[str],
    at_table: bool = True,
) -> RecordFacts | None:
    """The record that decides for this recipient, or None when none applies.

    Only records that name this recipient apply: its organisation, one of its roles, or
    "everyone at the table for this case" — the last only if the recipient sits at that table.
    The most specific wins, and an objection wins a tie.
    """
    applicable = [
        r
        for r in records
        if (r.recipient_org_id is None or r.recipient_org_id == org_id)
        and (r.recipient_role is None or r.recipient_role in roles)
        and (at_table or r.specificity > 0)
    ]
    if not applicable:
        return None
    return max(applicable, key=lambda r: (r.specificity, r.objection))
