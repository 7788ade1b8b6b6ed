"""The consent rules as plain functions: who must consent, which record wins, and what that
means for one recipient.

Law (Jeugdwet 7.3.4/7.3.5/7.3.15, DOMAIN.md "Consent"): younger than 12 the parents with
authority or the guardian; 12 to 15 the youth and the parents; 16 and older the youth alone.
For 12 to 15 the youth's consent alone suffices when withholding the help would plainly lead to
serious harm to the youth, or when the youth, after the parents refused, keeps wanting the help
after careful consideration (Jeugdwet 7.3.4 lid 3; WGBO art. 7:450 lid 2 BW). No consent is
needed for help under a child-protection order, secure-care authorisation or juvenile
probation: the legal basis is recorded instead. Age is taken on the day of processing.
Precedence: the more specific record wins; an objection beats a consent of equal specificity.
Seed 003 §5.2: without consent and with the youth not at the table, the case is discussed only
anonymously.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "Consenter",
    "Disclosure",
    "LegalBasis",
    "Outcome",
    "Recipient",
    "RecordFacts",
    "YouthAloneGround",
    "age_on",
    "birthday",
    "decide",
    "disclosure_turns",
    "effective_decision",
    "family_needed_at_table",
    "renewal_due",
    "required_consenters",
]


class LegalBasis(enum.StrEnum):
    CONSENT = "consent"  # toestemming (the normal case)
    CHILD_PROTECTION_ORDER = "child_protection_order"  # kinderbeschermingsmaatregel
    SECURE_CARE = "secure_care"  # machtiging gesloten jeugdhulp
    JUVENILE_PROBATION = "juvenile_probation"  # jeugdreclassering


class YouthAloneGround(enum.StrEnum):
    """Why, at 12 to 15, the youth's consent alone suffices (Jeugdwet 7.3.4 lid 3)."""

    SERIOUS_HARM = "serious_harm"  # niet verlenen leidt kennelijk tot ernstig nadeel
    YOUTH_PERSISTS = "youth_persists"  # na weigering van de ouders weloverwogen blijven wensen


class Disclosure(enum.IntEnum):
    """How much of a case a viewer sees. Ordered: a stricter level is smaller."""

    NOTHING = 0
    PSEUDONYMOUS = 1
    FULL = 2


def age_on(birth_date: dt.date, day: dt.date) -> int:
    """Age in whole years on ``day``: a birthday counts from that day; a 29 February child
    completes a year on 1 March in a common year."""
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def _youth_alone_applies(age: int, youth_alone: bool) -> bool:
    return youth_alone and 12 <= age < 16


def required_consenters(
    age: int, basis: LegalBasis = LegalBasis.CONSENT, *, youth_alone: bool = False
) -> frozenset[str]:
    """Who must consent, as case roles: "youth" and/or "parent" (parent also means guardian).

    ``youth_alone`` is a recorded exception for 12 to 15 (serious harm, or the youth persists
    after the parents refused); it means nothing at other ages.
    """
    if basis is not LegalBasis.CONSENT:
        return frozenset()
    if age < 12:
        return frozenset({"parent"})
    if age < 16:
        if _youth_alone_applies(age, youth_alone):
            return frozenset({"youth"})
        return frozenset({"youth", "parent"})
    return frozenset({"youth"})


def family_needed_at_table(age: int, *, youth_alone: bool = False) -> frozenset[str]:
    """Who must take part in the meeting themselves for it to be held *with* the family
    rather than about them (seed 003 §5.2 and its transparency footnote): always the youth,
    and besides everyone whose consent the law requires."""
    return frozenset({"youth"}) | required_consenters(age, youth_alone=youth_alone)


@dataclass(frozen=True)
class RecordFacts:
    """What the rules need to know of one consent record (toestemming or bezwaar)."""

    record_id: int
    objection: bool
    recipient_org_id: int | None
    recipient_role: str | None
    subject_member_id: int = 0
    valid_until: dt.date | None = None  # last day it holds
    withdrawn: bool = False

    @property
    def specificity(self) -> int:
        # a named organisation is more specific than a role, a role more than "everyone"
        if self.recipient_org_id is not None:
            return 2
        if self.recipient_role is not None:
            return 1
        return 0

    def is_live(self, today: dt.date) -> bool:
        return not self.withdrawn and (self.valid_until is None or self.valid_until >= today)


@dataclass(frozen=True)
class Consenter:
    """A family member who can consent: role "youth" or "parent" (a guardian counts as parent)."""

    member_id: int
    role: str


@dataclass(frozen=True)
class Recipient:
    """Who would receive the data: their organisation, their roles for this case (or in the
    team), and whether they sit at this case's table."""

    org_id: int | None
    roles: frozenset[str]
    at_table: bool


@dataclass(frozen=True)
class Outcome:
    level: Disclosure
    record_ids: tuple[int, ...] = ()
    reason: str = ""


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


def decide(
    *,
    age: int,
    consenters: Sequence[Consenter],
    records: Iterable[RecordFacts],
    recipient: Recipient,
    today: dt.date,
    basis: LegalBasis = LegalBasis.CONSENT,
    youth_alone: bool = False,
    family_present: frozenset[str] = frozenset(),
) -> Outcome:
    """FULL or PSEUDONYMOUS for one recipient of a case, with the records that justify it.

    FULL needs a legal basis other than consent, or a live consent that wins (by precedence)
    for this recipient from everyone the law requires, or — when none of them objected — the
    family itself at this recipient's table (youth, and under 16 a parent too). Withdrawn and
    expired records do not count. Anything else: the case is discussed under its pseudonym.
    """
    if basis is not LegalBasis.CONSENT:
        return Outcome(Disclosure.FULL, reason=f"legal_basis:{basis.value}")
    needed = required_consenters(age, youth_alone=youth_alone)
    live = [r for r in records if r.is_live(today)]
    objections: list[int] = []
    consents: list[int] = []
    missing = False
    for person in consenters:
        if person.role not in needed:
            continue  # e.g. the parents at 16+, or under a youth-alone exception
        winner = effective_decision(
            (r for r in live if r.subject_member_id == person.member_id),
            org_id=recipient.org_id,
            roles=recipient.roles,
            at_table=recipient.at_table,
        )
        if winner is None:
            missing = True
        elif winner.objection:
            objections.append(winner.record_id)
        else:
            consents.append(winner.record_id)
    if objections:
        return Outcome(Disclosure.PSEUDONYMOUS, tuple(sorted(objections)), "objection")
    if not needed <= {p.role for p in consenters}:
        return Outcome(Disclosure.PSEUDONYMOUS, reason="consenter_missing")
    if not missing:
        reason = "youth_alone" if _youth_alone_applies(age, youth_alone) else "consent"
        return Outcome(Disclosure.FULL, tuple(sorted(consents)), reason)
    if recipient.at_table and family_needed_at_table(age, youth_alone=youth_alone) <= (
        family_present
    ):
        return Outcome(Disclosure.FULL, tuple(sorted(consents)), "family_at_table")
    return Outcome(Disclosure.PSEUDONYMOUS, reason="no_consent")


def birthday(birth_date: dt.date, age: int) -> dt.date:
    """The day the youth turns ``age`` (a 29 February child: 1 March in a common year)."""
    year = birth_date.year + age
    try:
        return birth_date.replace(year=year)
    except ValueError:  # 29 February in a common year
        return dt.date(year, 3, 1)


@dataclass(frozen=True)
class Renewal:
    """New consent is needed: the youth turned (or turns) ``age`` during the case."""

    age: int  # 12 or 16
    birthday: dt.date
    needed: frozenset[str]  # who must now decide: "youth" and/or "parent"
    due_by: dt.date | None  # the next session, when one is planned


def renewal_due(
    *,
    birth: dt.date,
    case_started_on: dt.date,
    today: dt.date,
    next_session_on: dt.date | None,
    consenters: Sequence[Consenter],
    decided_on: Iterable[tuple[int, dt.date]],
    basis: LegalBasis = LegalBasis.CONSENT,
) -> Renewal | None:
    """A 12th or 16th birthday after the case began and no later than today or the next
    session calls for new consent (the law's age bands change who decides). It is done when
    everyone who must consent at the new age recorded a decision (consent or objection) on or
    after that birthday; ``decided_on`` holds (member id, local date recorded)."""
    if basis is not LegalBasis.CONSENT:
        return None
    horizon = max(today, next_session_on) if next_session_on else today
    days = [(a, birthday(birth, a)) for a in (16, 12)]
    hit = next(((a, d) for a, d in days if case_started_on < d <= horizon), None)
    if hit is None:
        return None
    age, day = hit
    needed = required_consenters(age)
    decided = {member for member, on in decided_on if on >= day}
    if all(p.member_id in decided for p in consenters if p.role in needed) and needed <= {
        p.role for p in consenters
    }:
        return None
    return Renewal(
        age, day, needed, next_session_on if next_session_on and next_session_on >= today else None
    )


RENEWAL_AGES = (12, 16)  # the birthdays on which the law changes who must consent


def disclosure_turns(
    *,
    births: Mapping[int, dt.date],
    record_ends: Iterable[tuple[int, dt.date]],
    after: dt.date,
    upto: dt.date,
) -> dict[int, dt.date]:
    """The cases whose disclosure can change by the calendar alone on a day after ``after``,
    up to and including ``upto``, each with the latest such day: the youth's 12th or 16th
    birthday (a 29 February child: 1 March in a common year, as :func:`age_on` counts), or
    the first day a consent record no longer holds. ``births``: case id -> birth date;
    ``record_ends``: (case id, ``valid_until``) of records not withdrawn."""
    turns: dict[int, dt.date] = {}

    def note(case_id: int, day: dt.date) -> None:
        if after < day <= upto and day > turns.get(case_id, dt.date.min):
            turns[case_id] = day

    for case_id, birth in births.items():
        for age in RENEWAL_AGES:
            note(case_id, birthday(birth, age))
    for case_id, valid_until in record_ends:
        note(case_id, valid_until + dt.timedelta(days=1))  # valid_until is the last day it holds
    return turns
