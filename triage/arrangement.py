"""Step 4 of the session: the arrangement (arrangement) and the procesregisseur.

Lines of help, each with a provider, a form of help (from ambulant to JeugdzorgPlus, as
data), an intensity with its unit, a start and an expected end (9 months by default), and the
provider's stated share (aandeel). The chair records the split of effort (inzetverdeling) as
binding; after that the lines change only by a new version. Keerpunt suggests as
procesregisseur the provider that gives the most help, then the longest (seed 003 §3.5).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import select

from keerpunt.consent import service as consent
from keerpunt.consent.service import Disclosure
from keerpunt.platform import audit
from keerpunt.platform.crypto import CaseCipher
from keerpunt.platform.db import utcnow
from keerpunt.platform.errors import InvalidInput, NotAllowed, NotFound, StaleVersion
from keerpunt.platform.i18n import N_
from keerpunt.platform.models import Case, CaseMember, CaseRole, Organisation, User
from keerpunt.platform.principal import Principal
from keerpunt.platform.uow import UnitOfWork
from keerpunt.triage import service
from keerpunt.triage.models import Arrangement, ArrangementLine, TriageSession
from keerpunt.triage.table_rows import TableRows
from keerpunt.triage.vocab import VOCAB

__all__ = [
    "ARRANGEMENT_MONTHS",
    "HELP_FORMS",
    "UNIT_MINUTES",
    "ArrangementView",
    "Effort",
    "HelpLineView",
    "ProviderEffort",
    "Reason",
    "Suggestion",
    "agree",
    "arrangement_for",
    "arrangement_view",
    "designate",
    "effort_by_provider",
    "expected_end",
    "fix_on_close",
    "may_keep_plan",
    "may_update_plan",
    "parse_intensity",
    "revise",
    "suggest_procesregisseur",
]

ARRANGEMENT_MONTHS = 9  # default duration of an arrangement (DOMAIN.md, seed 003 §3.7)

# Forms of help, from light to heavy (the order the table considers them). The labels are in
# VOCAB["help_form"]; a region adds a form there and here.
HELP_FORMS: tuple[str, ...] = tuple(VOCAB["help_form"])

# Time equivalent of one unit, for the weekly volume that settlement and the suggestion use.
# A dagdeel is half a working day (4 hours), an etmaal 24 hours (iJw units 16 and 14).
UNIT_MINUTES: dict[str, int] = {"hour": 60, "dagdeel": 240, "etmaal": 1440}
_MAX_UNITS = {"dagdeel": 14, "etmaal": 7}


def expected_end(start: dt.date, months: int = ARRANGEMENT_MONTHS) -> dt.date:
    """The last day of an arrangement that starts on ``start`` and runs ``months`` months."""
    month = start.month - 1 + months
    year, month = start.year + month // 12, month % 12 + 1
    same_day = dt.date(year, month, min(start.day, calendar.monthrange(year, month)[1]))
    return same_day - dt.timedelta(days=1)


def parse_intensity(raw: str, unit: str) -> tuple[int, int | None]:
    """The stated intensity as (minutes per week, units per week): hours as typed ("2,5"),
    or a whole number of dagdelen (at most 14) or etmalen (at most 7) per week."""
    if unit == "hour":
        return service.parse_hours(raw), None
    if unit not in _MAX_UNITS:
        raise InvalidInput({"intensity_unit": N_("Kies een eenheid.")})
    text = raw.strip()
    if not text.isdigit() or not 1 <= int(text) <= _MAX_UNITS[unit]:
        message = (
            N_("Vul een heel aantal dagdelen per week in, van 1 tot en met 14.")
            if unit == "dagdeel"
            else N_("Vul een heel aantal etmalen per week in, van 1 tot en met 7.")
        )
        raise InvalidInput({"hours": message})
    return int(text) * UNIT_MINUTES[unit], int(text)


# -- the procesregisseur suggestion (pure) -------------------------------------------------------


@dataclass(frozen=True)
class Effort:
    """One line's effort, as the suggestion needs it (no family data)."""

    provider_id: int
    provider: str
    minutes_per_week: int
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class ProviderEffort:
    provider_id: int
    provider: str
    volume: Fraction  # minutes over the whole arrangement
    first_day: dt.date
    last_day: dt.date

    @property
    def days(self) -> int:
        """How long this provider helps: from its first start to its last end, inclusive."""
        return (self.last_day - self.first_day).days + 1

    @property
    def hours(self) -> str:
        return _hours_text(self.volume)


def _hours_text(minutes: Fraction) -> str:
    hours = Decimal(minutes.numerator) / Decimal(minutes.denominator) / 60
    return str(hours.quantize(Decimal("1")))


@dataclass(frozen=True)
class Reason:
    """Why: a Dutch message id with its parameters, translated where it is shown."""

    msgid: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Suggestion:
    provider_id: int | None  # None: no lines yet, or a full tie (the table chooses)
    reason: Reason
    ranking: tuple[ProviderEffort, ...] = ()


def effort_by_provider(lines: Iterable[Effort]) -> tuple[ProviderEffort, ...]:
    """Each provider's total help (minutes per week × days / 7, summed over its lines) and the
    span of its help; most help first, then longest, then by name."""
    totals: dict[int, ProviderEffort] = {}
    for ln in lines:
        days = (ln.end - ln.start).days + 1
        volume = Fraction(ln.minutes_per_week * max(days, 0), 7)
        prev = totals.get(ln.provider_id)
        totals[ln.provider_id] = (
            ProviderEffort(ln.provider_id, ln.provider, volume, ln.start, ln.end)
            if prev is None
            else ProviderEffort(
                ln.provider_id,
                ln.provider,
                prev.volume + volume,
                min(prev.first_day, ln.start),
                max(prev.last_day, ln.end),
            )
        )
    return tuple(sorted(totals.values(), key=lambda p: (-p.volume, -p.days, p.provider)))


def suggest_procesregisseur(lines: Sequence[Effort]) -> Suggestion:
    """The provider that gives the most help, and with equal help the longest (seed 003 §3.5:
    "de aanbieder die meeste of het langst hulp gaat bieden"). A full tie is not broken by
    chance or by name: the suggestion says so and the table chooses."""
    ranking = effort_by_provider(lines)
    if not ranking:
        return Suggestion(None, Reason(N_("Er is nog geen hulp in het arrangement.")))
    first = ranking[0]
    if len(ranking) == 1:
        return Suggestion(
            first.provider_id,
            Reason(
                N_("%(provider)s is de enige aanbieder in het arrangement."),
                {"provider": first.provider},
            ),
            ranking,
        )
    second = ranking[1]
    if first.volume > second.volume:
        return Suggestion(
            first.provider_id,
            Reason(
                N_(
                    "%(provider)s geeft de meeste hulp: %(hours)s uur in totaal "
                    "(daarna %(next)s: %(next_hours)s uur)."
                ),
                {
                    "provider": first.provider,
                    "hours": first.hours,
                    "next": second.provider,
                    "next_hours": second.hours,
                },
            ),
            ranking,
        )
    same = [p for p in ranking if p.volume == first.volume]
    if first.days > same[1].days:
        return Suggestion(
            first.provider_id,
            Reason(
                N_(
                    "%(names)s geven evenveel hulp (%(hours)s uur). %(provider)s helpt het "
                    "langst: %(days)s dagen."
                ),
                {
                    "names": _names(p.provider for p in same),
                    "hours": first.hours,
                    "provider": first.provider,
                    "days": str(first.days),
                },
            ),
            ranking,
        )
    tied = [p for p in same if p.days == first.days]
    return Suggestion(
        None,
        Reason(
            N_("%(names)s geven evenveel hulp, even lang. Kies samen wie procesregisseur wordt."),
            {"names": _names(p.provider for p in tied)},
        ),
        ranking,
    )


def _names(names: Iterable[str]) -> str:
    items = list(names)
    return ", ".join(items[:-1]) + " en " + items[-1] if len(items) > 1 else "".join(items)


# -- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HelpLineView:
    id: int
    provider_id: int
    provider: str
    product_code: str
    help_form: str
    intensity: str  # "2.5" hours, or a count of dagdelen / etmalen
    intensity_unit: str
    start_date: dt.date
    end_date: dt.date
    share: str | None  # the provider's stated share; None: hidden for this viewer
    percent: int  # this line's part of the whole arrangement's effort


@dataclass(frozen=True)
class ArrangementView:
    session_id: int
    version: int
    agreed_at: dt.datetime | None
    lines: tuple[HelpLineView, ...]
    split: tuple[tuple[str, int], ...]  # (provider, percent of the effort)
    suggestion: Suggestion
    procesregisseur_org: str | None
    procesregisseur_person: str | None
    procesregisseur_org_id: int | None
    providers: tuple[tuple[int, str], ...]
    people: tuple[tuple[int, str], ...]  # staff of the providers in the lines: (user id, label)
    may_arrange: bool
    may_chair: bool
    is_open: bool

    @property
    def agreed(self) -> bool:
        return self.agreed_at is not None

    @property
    def may_add(self) -> bool:
        return self.is_open and self.may_arrange and not self.agreed


async def arrangement_for(uow: UnitOfWork, session_id: int) -> Arrangement:
    """The session's arrangement row (created on first use, version 1, not agreed)."""
    row = await uow.db.get(Arrangement, session_id)
    if row is None:
        row = Arrangement(session_id=session_id, version=1)
        uow.db.add(row)
        await uow.db.flush()
    return row


async def _current_lines(
    uow: UnitOfWork, session_id: int, version: int
) -> Sequence[ArrangementLine]:
    return (
        await uow.db.scalars(
            select(ArrangementLine)
            .where(ArrangementLine.session_id == session_id, ArrangementLine.revision == version)
            .order_by(ArrangementLine.id)
        )
    ).all()


def _percentages(values: Sequence[Fraction]) -> list[int]:
    """Whole percentages that add up to 100 (largest remainder), so the split reads right."""
    total = sum(values, Fraction(0))
    if total == 0:
        return [0 for _ in values]
    exact = [v * 100 / total for v in values]
    floors = [int(x) for x in exact]
    order = sorted(range(len(values)), key=lambda i: exact[i] - floors[i], reverse=True)
    for i in order[: 100 - sum(floors)]:
        floors[i] += 1
    return floors


def _efforts(lines: Sequence[ArrangementLine], orgs: dict[int, str]) -> list[Effort]:
    return [
        Effort(
            ln.provider_id,
            orgs.get(ln.provider_id, "?"),
            ln.minutes_per_week,
            ln.start_date,
            ln.end_date,
        )
        for ln in lines
    ]


def _share(cipher: CaseCipher, level: Disclosure, ln: ArrangementLine) -> str | None:
    if ln.share_enc is None or cipher.shredded:
        return None
    if not (ln.share_anonymous or level is Disclosure.FULL):
        return None
    return cipher.decrypt("line.share", ln.share_enc)


async def arrangement_view(
    uow: UnitOfWork,
    session_id: int,
    *,
    level: Disclosure | None = None,
    table: TableRows | None = None,
) -> ArrangementView:
    """Step 4 for this viewer. The lines themselves are non-personal (provider, form, hours);
    the stated shares are free text and shown only with consent (or when written under the
    pseudonym, like factors and goals). Without ``level`` consent decides it here, and the
    read is audited like every read of the case (the caller who passes ``level`` audited
    it already). ``table``: rows already read for other viewers of the same picture."""
    table = table or TableRows(uow.db)
    session, case = await service._table_session(uow, session_id, table)
    if level is None:
        level = (await consent.disclosure(uow, case)).level
    if level is Disclosure.NOTHING:
        raise NotFound()
    row = await table.arrangement(session.id)
    version = row.version if row else 1
    lines = await table.lines(session.id, version)
    orgs = await table.providers()
    cipher = await table.cipher(uow.vault, case.id)
    efforts = _efforts(lines, orgs)
    volumes = [Fraction(e.minutes_per_week * ((e.end - e.start).days + 1), 7) for e in efforts]
    ranking = effort_by_provider(efforts)
    split = tuple(
        zip([p.provider for p in ranking], _percentages([p.volume for p in ranking]), strict=True)
    )
    views = tuple(
        HelpLineView(
            id=ln.id,
            provider_id=ln.provider_id,
            provider=orgs.get(ln.provider_id, "?"),
            product_code=ln.product_code,
            help_form=ln.help_form,
            intensity=(
                service._hours(ln.minutes_per_week)
                if ln.intensity_unit == "hour"
                else str(ln.units_per_week)
            ),
            intensity_unit=ln.intensity_unit,
            start_date=ln.start_date,
            end_date=ln.end_date,
            share=_share(cipher, level, ln),
            percent=pct,
        )
        for ln, pct in zip(lines, _percentages(volumes), strict=True)
    )
    in_lines = {ln.provider_id for ln in lines}
    people: list[tuple[int, str]] = []
    for staff in await table.staff_of(in_lines):
        people.append((staff.id, f"{staff.display_name} ({staff.organisation.name})"))
    person = None
    if row and row.procesregisseur_user_id:
        user = await uow.db.get(User, row.procesregisseur_user_id)
        person = user.display_name if user else None
    return ArrangementView(
        session_id=session.id,
        version=version,
        agreed_at=row.agreed_at if row else None,
        lines=views,
        split=split,
        suggestion=suggest_procesregisseur(efforts),
        procesregisseur_org=(
            orgs.get(row.procesregisseur_org_id) if row and row.procesregisseur_org_id else None
        ),
        procesregisseur_person=person,
        procesregisseur_org_id=row.procesregisseur_org_id if row else None,
        providers=tuple(orgs.items()),
        people=tuple(people),
        may_arrange=service._may_arrange(uow),
        may_chair=uow.who.has("coordinator"),
        is_open=session.status != "closed",
    )


# -- changing ------------------------------------------------------------------------------------


def _require_chair(uow: UnitOfWork, message: str) -> None:
    if not uow.who.has("coordinator"):
        raise NotAllowed(message)


async def _record(
    uow: UnitOfWork, session: TriageSession, case: Case, kind: str, detail: str
) -> None:
    await uow.emit(session.room, kind, session.id)
    await audit.record(uow.db, uow.who, kind, case_id=case.id, purpose="triage", detail=detail)


async def agree(uow: UnitOfWork, session_id: int, version: int) -> Arrangement:
    """The chair records the split of effort (inzetverdeling) as binding. ``version`` is the
    version the chair saw: if the lines changed meanwhile the act is refused (StaleVersion)."""
    _require_chair(uow, N_("Alleen de voorzitter legt de verdeling vast."))
    session, case, _level = await service._open_session(uow, session_id)
    row = await arrangement_for(uow, session.id)
    if row.version != version:
        raise StaleVersion()
    if row.agreed_at is not None:
        return row
    if not await _current_lines(uow, session.id, row.version):
        raise InvalidInput(
            {"agree": N_("Er is nog geen hulp in het arrangement. Voeg eerst hulp toe.")}
        )
    row.agreed_at = utcnow()
    row.agreed_by_id = uow.who.user_id
    await uow.db.flush()
    await _record(
        uow, session, case, "arrangement.agreed", f"session={session.id} version={row.version}"
    )
    return row


async def revise(uow: UnitOfWork, session_id: int) -> Arrangement:
    """Start a new version of an agreed arrangement: the agreed lines stay as they were (as
    history) and are copied into the new version, which can then change until agreed again."""
    _require_chair(uow, N_("Alleen de voorzitter maakt een nieuwe versie van het arrangement."))
    session, case, _level = await service._open_session(uow, session_id)
    row = await arrangement_for(uow, session.id)
    if row.agreed_at is None:
        raise InvalidInput({"agree": N_("Het arrangement is nog niet vastgelegd.")})
    old = await _current_lines(uow, session.id, row.version)
    row.version += 1
    row.agreed_at = None
    row.agreed_by_id = None
    for ln in old:
        uow.db.add(
            ArrangementLine(
                session_id=ln.session_id,
                provider_id=ln.provider_id,
                product_code=ln.product_code,
                help_form=ln.help_form,
                minutes_per_week=ln.minutes_per_week,
                intensity_unit=ln.intensity_unit,
                units_per_week=ln.units_per_week,
                share_enc=ln.share_enc,
                share_anonymous=ln.share_anonymous,
                start_date=ln.start_date,
                end_date=ln.end_date,
                author=ln.author,
                revision=row.version,
            )
        )
    await uow.db.flush()
    await _record(
        uow, session, case, "arrangement.revised", f"session={session.id} version={row.version}"
    )
    return row


async def remove_line(uow: UnitOfWork, session_id: int, line_id: int) -> None:
    """Take a line out of an arrangement that is not yet agreed."""
    if not service._may_arrange(uow):
        raise NotAllowed(N_("Alleen de professionals aan tafel veranderen het arrangement."))
    session, case, _level = await service._open_session(uow, session_id)
    row = await arrangement_for(uow, session.id)
    line = await uow.db.get(ArrangementLine, line_id)
    if line is None or line.session_id != session.id or line.revision != row.version:
        raise NotFound()
    if row.agreed_at is not None:
        raise NotAllowed(_AGREED)
    await uow.db.delete(line)
    await uow.db.flush()
    await _record(uow, session, case, "line.removed", f"line={line_id}")


_AGREED = N_(
    "De verdeling is vastgelegd. Wilt u iets veranderen? Dan maakt de voorzitter een nieuwe versie."
)


async def designate(
    uow: UnitOfWork, session_id: int, provider_id: int, user_id: int | None
) -> Arrangement:
    """The chair designates the procesregisseur (procesregisseur aanwijzen): a provider in the
    arrangement and, if known, the professional of that provider, who joins the case."""
    _require_chair(uow, N_("Alleen de voorzitter wijst de procesregisseur aan."))
    session, case, _level = await service._open_session(uow, session_id)
    row = await arrangement_for(uow, session.id)
    providers = {ln.provider_id for ln in await _current_lines(uow, session.id, row.version)}
    errors: dict[str, str] = {}
    if provider_id not in providers:
        errors["provider_id"] = N_("Kies een aanbieder die hulp geeft in dit arrangement.")
    user = await uow.db.get(User, user_id) if user_id is not None else None
    if user_id is not None and (
        user is None or not user.active or user.organisation_id != provider_id
    ):
        errors["user_id"] = N_("Kies iemand die werkt bij deze aanbieder.")
    if errors:
        raise InvalidInput(errors)
    row.procesregisseur_org_id = provider_id
    row.procesregisseur_user_id = user_id
    if user is not None:
        existing = await uow.db.scalar(
            select(CaseMember.id).where(
                CaseMember.case_id == case.id,
                CaseMember.user_id == user.id,
                CaseMember.role == CaseRole.PROCESREGISSEUR,
                CaseMember.removed_at.is_(None),
            )
        )
        if existing is None:
            uow.db.add(CaseMember(case_id=case.id, role=CaseRole.PROCESREGISSEUR, user_id=user.id))
    await uow.db.flush()
    await _record(
        uow,
        session,
        case,
        "arrangement.designated",
        f"session={session.id} provider={provider_id} user={user_id}",
    )
    return row


async def fix_on_close(uow: UnitOfWork, session: TriageSession, case: Case) -> None:
    """Closing the session fixes the arrangement: if the chair had not yet agreed the split,
    closing records it (audited as such)."""
    row = await arrangement_for(uow, session.id)
    if row.agreed_at is None:
        row.agreed_at = utcnow()
        row.agreed_by_id = uow.who.user_id
        await audit.record(
            uow.db,
            uow.who,
            "arrangement.agreed",
            case_id=case.id,
            purpose="triage",
            detail=f"session={session.id} version={row.version} on_close=1",
        )


async def may_update_plan(uow: UnitOfWork, session_id: int) -> bool:
    """Activity statuses are kept up to date by the procesregisseur's organisation, and by
    the coordinator."""
    return may_keep_plan(uow.who, await uow.db.get(Arrangement, session_id))


def may_keep_plan(who: Principal, row: Arrangement | None) -> bool:
    """:func:`may_update_plan`, given the session's arrangement row."""
    if who.has("coordinator"):
        return True
    return (
        row is not None
        and row.procesregisseur_org_id is not None
        and who.organisation_id == row.procesregisseur_org_id
    )


async def provider_name(uow: UnitOfWork, org_id: int | None) -> str | None:
    if org_id is None:
        return None
    org = await uow.db.get(Organisation, org_id)
    return org.name if org else None
