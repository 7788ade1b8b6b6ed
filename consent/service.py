"""Consent: recording consent and objections, and the one decision point for disclosure.

Every read of a case's personal data asks :func:`disclosure` first. Other domains import only
this module; consent never imports triage or settlement.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select

from keerpunt.consent.models import ConsentRecord, Decision, Purpose
from keerpunt.consent.rules import (
    Disclosure,
    LegalBasis,
    RecordFacts,
    age_on,
    effective_decision,
    required_consenters,
)
from keerpunt.consent.vocab import CONSENT_VOCAB
from keerpunt.platform import audit
from keerpunt.platform.errors import InvalidInput, NotAllowed, NotFound
from keerpunt.platform.i18n import AMSTERDAM, N_
from keerpunt.platform.models import FAMILY_ROLES, Case, CaseMember, CaseRole, Organisation
from keerpunt.platform.principal import Principal
from keerpunt.platform.uow import CONSENT_CHANGED, UnitOfWork

__all__ = [
    "ConsentLine",
    "ConsentOverview",
    "Decision",
    "Disclosure",
    "DisclosureDecision",
    "Purpose",
    "age_on",
    "consent_overview",
    "consent_overview_for",
    "disclosure",
    "record_consent",
    "withdraw_consent",
]

# Staff who may see that a case exists (pseudonymously) without being at its table.
_TEAM_ROLES = frozenset({"coordinator", "triage_member"})


@dataclass(frozen=True)
class DisclosureDecision:
    level: Disclosure
    record_ids: tuple[int, ...] = ()
    reason: str = ""


def _today() -> dt.date:
    return dt.datetime.now(AMSTERDAM).date()


async def _case_roles(uow: UnitOfWork, case_id: int, who: Principal) -> frozenset[str]:
    if who.member_id is not None:
        return frozenset({who.member_role or ""}) if who.case_id == case_id else frozenset()
    rows = await uow.db.scalars(
        select(CaseMember.role).where(
            CaseMember.case_id == case_id,
            CaseMember.user_id == who.user_id,
            CaseMember.removed_at.is_(None),
        )
    )
    return frozenset(rows.all())


async def disclosure(
    uow: UnitOfWork,
    case: Case,
    purpose: Purpose = Purpose.INFORMATION_EXCHANGE,
    *,
    audit_read: bool = True,
) -> DisclosureDecision:
    """How much of this case the acting person may see, with the records that justify it.

    The family sees its own case. The organisation that registered the case holds the data
    it collected. Anyone else at the table sees personal data only with an effective consent
    (or objection-free legal basis) of everyone the law requires for the youth's age today;
    without it the case is discussed under its pseudonym (anonieme bespreking). Someone with
    no part in the case sees nothing.
    """
    who = uow.who
    roles = await _case_roles(uow, case.id, who)
    decision = await _decide(uow, case, purpose, who, roles)
    if audit_read and decision.level is not Disclosure.NOTHING:
        await audit.record(
            uow.db,
            who,
            "case.read",
            case_id=case.id,
            purpose=purpose.value,
            detail=f"level={decision.level.name.lower()} records={list(decision.record_ids)}"
            f" reason={decision.reason}",
        )
    return decision


async def _decide(
    uow: UnitOfWork, case: Case, purpose: Purpose, who: Principal, roles: frozenset[str]
) -> DisclosureDecision:
    if case.shredded_at is not None:
        return DisclosureDecision(
            Disclosure.PSEUDONYMOUS if roles else Disclosure.NOTHING, reason="shredded"
        )
    if who.member_id is not None:
        if who.case_id == case.id and roles & {r.value for r in FAMILY_ROLES}:
            return DisclosureDecision(Disclosure.FULL, reason="family")
        return DisclosureDecision(Disclosure.NOTHING, reason="not_this_case")
    if case.registered_by_id == who.user_id or "local_team" in roles:
        return DisclosureDecision(Disclosure.FULL, reason="registrar")
    if not roles and not (who.staff_roles & _TEAM_ROLES):
        return DisclosureDecision(Disclosure.NOTHING, reason="no_part")
    return await _by_consent(
        uow, case, purpose, who, roles | (who.staff_roles & _TEAM_ROLES), at_table=bool(roles)
    )


async def _by_consent(
    uow: UnitOfWork,
    case: Case,
    purpose: Purpose,
    who: Principal,
    roles: frozenset[str],
    *,
    at_table: bool,
) -> DisclosureDecision:
    cipher = await uow.vault.cipher(uow.db, case.id)
    birth_raw = cipher.decrypt("case.birth_date", case.birth_date_enc)
    if birth_raw is None:
        return DisclosureDecision(Disclosure.PSEUDONYMOUS, reason="no_birth_date")
    age = age_on(dt.date.fromisoformat(birth_raw), _today())
    needed = required_consenters(age, LegalBasis(case.legal_basis))
    if not needed:
        return DisclosureDecision(Disclosure.FULL, reason=f"legal_basis:{case.legal_basis}")
    members = (
        await uow.db.scalars(
            select(CaseMember).where(
                CaseMember.case_id == case.id,
                CaseMember.removed_at.is_(None),
                CaseMember.role.in_(["youth", "parent", "guardian"]),
            )
        )
    ).all()
    records = (
        await uow.db.scalars(
            select(ConsentRecord).where(
                ConsentRecord.case_id == case.id,
                ConsentRecord.purpose == purpose.value,
                ConsentRecord.withdrawn_at.is_(None),
            )
        )
    ).all()
    today = _today()
    live = [r for r in records if r.valid_until is None or r.valid_until >= today]
    used: list[int] = []
    for member in members:
        role = "parent" if member.role in {"parent", "guardian"} else member.role
        if role not in needed:
            continue
        facts = [
            RecordFacts(
                r.id, r.decision == Decision.OBJECTION, r.recipient_org_id, r.recipient_role
            )
            for r in live
            if r.subject_member_id == member.id
        ]
        winner = effective_decision(
            facts, org_id=who.organisation_id, roles=roles, at_table=at_table
        )
        if winner is None or winner.objection:
            reason = "objection" if winner else "no_consent"
            return DisclosureDecision(
                Disclosure.PSEUDONYMOUS, (winner.record_id,) if winner else (), reason
            )
        used.append(winner.record_id)
    present_roles = {"parent" if m.role == "guardian" else m.role for m in members}
    if not needed <= present_roles:
        return DisclosureDecision(Disclosure.PSEUDONYMOUS, reason="consenter_missing")
    return DisclosureDecision(Disclosure.FULL, tuple(sorted(used)), "consent")


async def record_consent(
    uow: UnitOfWork,
    case: Case,
    *,
    subject_member_id: int,
    purpose: Purpose,
    decision: Decision,
    recipient_org_id: int | None,
    recipient_role: str | None,
    obtained_how: str,
    explanation: str,
    valid_until: dt.date | None,
) -> ConsentRecord:
    """Record a consent or an objection (toestemming / bezwaar) that the registrar obtained.

    Only the professional who registered the case, or its local-team member, records it;
    the explanation given to the family is required (transparency principle).
    """
    who = uow.who
    roles = await _case_roles(uow, case.id, who)
    if not (
        case.registered_by_id == who.user_id or "local_team" in roles or who.has("coordinator")
    ):
        raise NotAllowed()
    errors: dict[str, str] = {}
    subject = await uow.db.get(CaseMember, subject_member_id)
    if (
        subject is None
        or subject.case_id != case.id
        or subject.role not in {CaseRole.YOUTH, CaseRole.PARENT, CaseRole.GUARDIAN}
    ):
        errors["subject_member_id"] = N_("Kies de jeugdige of een ouder die toestemming geeft.")
    if obtained_how not in {"in_person", "phone", "written"}:
        errors["obtained_how"] = N_("Kies hoe de toestemming is gegeven.")
    if len(explanation.strip()) < 10:
        errors["explanation"] = N_("Schrijf kort op wat u aan het gezin heeft uitgelegd.")
    if recipient_org_id is not None and await uow.db.get(Organisation, recipient_org_id) is None:
        errors["recipient"] = N_("Kies een bestaande organisatie.")
    if valid_until is not None and valid_until < _today():
        errors["valid_until"] = N_("De einddatum ligt in het verleden.")
    if errors:
        raise InvalidInput(errors)
    rec = ConsentRecord(
        case_id=case.id,
        subject_member_id=subject_member_id,
        purpose=purpose.value,
        decision=decision.value,
        recipient_org_id=recipient_org_id,
        recipient_role=recipient_role,
        obtained_how=obtained_how,
        obtained_by_id=who.user_id,
        explanation=explanation.strip(),
        valid_until=valid_until,
    )
    uow.db.add(rec)
    await uow.db.flush()
    await audit.record(
        uow.db,
        who,
        f"consent.{decision.value}",
        case_id=case.id,
        purpose=purpose.value,
        detail=f"record={rec.id}",
    )
    await uow.emit_to_case(case.id, CONSENT_CHANGED)  # live screens re-render at once
    return rec


async def withdraw_consent(uow: UnitOfWork, record_id: int) -> ConsentRecord:
    """Withdraw a consent (intrekken); takes effect at the next read, the record stays."""
    rec = await uow.db.get(ConsentRecord, record_id)
    if rec is None:
        raise NotFound()
    who = uow.who
    case = await uow.db.get(Case, rec.case_id)
    assert case is not None
    family_self = who.member_id is not None and who.case_id == rec.case_id
    roles = await _case_roles(uow, case.id, who)
    if not (family_self or case.registered_by_id == who.user_id or "local_team" in roles):
        raise NotAllowed()
    if rec.withdrawn_at is None:
        rec.withdrawn_at = dt.datetime.now(dt.UTC)
        rec.withdrawn_by = who.actor
        await audit.record(
            uow.db,
            who,
            "consent.withdrawn",
            case_id=rec.case_id,
            purpose=rec.purpose,
            detail=f"record={rec.id}",
        )
        await uow.emit_to_case(rec.case_id, CONSENT_CHANGED)  # live screens re-render now
    return rec


@dataclass(frozen=True)
class ConsentLine:
    record_id: int
    subject_label: str
    purpose: str
    decision: str
    recipient_label: str
    recipient_is_org: bool
    obtained_how: str
    explanation: str
    recorded_at: dt.datetime
    valid_until: dt.date | None
    withdrawn_at: dt.datetime | None


@dataclass(frozen=True)
class ConsentOverview:
    case_id: int
    lines: tuple[ConsentLine, ...]
    needed_roles: frozenset[str]
    subjects: tuple[tuple[int, str], ...]  # (member id, label) who may consent
    organisations: tuple[tuple[int, str], ...]
    may_record: bool
    vocab: dict[str, dict[str, str]] = field(default_factory=lambda: CONSENT_VOCAB)


async def consent_overview_for(uow: UnitOfWork, case_id: int, level: Disclosure) -> ConsentOverview:
    """The consent overview of a case by its id (for other domains' pages)."""
    case = await uow.db.get(Case, case_id)
    if case is None:
        raise NotFound()
    return await consent_overview(uow, case, level)


async def consent_overview(uow: UnitOfWork, case: Case, level: Disclosure) -> ConsentOverview:
    """The case's consent records for its consent page, labelled for this viewer."""
    cipher = await uow.vault.cipher(uow.db, case.id)
    members = {
        m.id: m
        for m in (await uow.db.scalars(select(CaseMember).where(CaseMember.case_id == case.id)))
    }

    def label(member_id: int) -> str:
        m = members[member_id]
        name = (
            cipher.decrypt("member.name", m.name_enc)
            if level is Disclosure.FULL and not cipher.shredded
            else None
        )
        role = {"youth": N_("Jeugdige"), "parent": N_("Ouder"), "guardian": N_("Voogd")}.get(
            m.role, m.role
        )
        return f"{role}: {name}" if name else role

    orgs = {
        o.id: o.name for o in await uow.db.scalars(select(Organisation).order_by(Organisation.name))
    }
    records = (
        await uow.db.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.case_id == case.id)
            .order_by(ConsentRecord.recorded_at)
        )
    ).all()
    lines = tuple(
        ConsentLine(
            record_id=r.id,
            subject_label=label(r.subject_member_id),
            purpose=r.purpose,
            decision=r.decision,
            recipient_label=(
                orgs.get(r.recipient_org_id, "?")
                if r.recipient_org_id
                else CONSENT_VOCAB["recipient_role"].get(r.recipient_role or "", "")
            ),
            recipient_is_org=r.recipient_org_id is not None,
            obtained_how=r.obtained_how,
            explanation=r.explanation,
            recorded_at=r.recorded_at,
            valid_until=r.valid_until,
            withdrawn_at=r.withdrawn_at,
        )
        for r in records
    )
    birth_raw = (
        cipher.decrypt("case.birth_date", case.birth_date_enc) if not cipher.shredded else None
    )
    needed = (
        required_consenters(
            age_on(dt.date.fromisoformat(birth_raw), _today()), LegalBasis(case.legal_basis)
        )
        if birth_raw
        else frozenset()
    )
    roles = await _case_roles(uow, case.id, uow.who)
    may_record = uow.who.is_staff and (
        case.registered_by_id == uow.who.user_id
        or "local_team" in roles
        or uow.who.has("coordinator")
    )
    subjects = tuple(
        (m.id, label(m.id))
        for m in members.values()
        if m.role in {"youth", "parent", "guardian"} and m.removed_at is None
    )
    return ConsentOverview(case.id, lines, needed, subjects, tuple(orgs.items()), may_record)
