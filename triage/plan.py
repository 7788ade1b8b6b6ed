"""Step 5 of the session: the plan (plan en verdeling van de activiteiten).

Activities (who, what, when) with a status that the procesregisseur keeps up to date after the
meeting, and three agreements in plain words: how the parties keep each other informed, what
the municipality does, and what to do in a crisis (seed 003 §3.5). Everything is edited live
at the table; a save on top of someone else's change is refused (StaleVersion), never lost.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from keerpunt.consent import service as consent
from keerpunt.consent.service import Disclosure
from keerpunt.platform.crypto import CaseCipher
from keerpunt.platform.db import utcnow
from keerpunt.platform.errors import InvalidInput, NotAllowed, NotFound, StaleVersion
from keerpunt.platform.i18n import N_
from keerpunt.platform.models import Case
from keerpunt.platform.uow import UnitOfWork
from keerpunt.triage import arrangement, service
from keerpunt.triage.models import ActivityStatus, PlanActivity, PlanAgreement, TriageSession
from keerpunt.triage.table_rows import TableRows

__all__ = [
    "TOPICS",
    "ActivityView",
    "AgreementView",
    "PlanView",
    "add_activity",
    "plan_view",
    "set_agreement",
    "set_status",
    "update_activity",
]

TOPICS: tuple[str, ...] = ("informing", "municipality", "crisis")
STATUSES: tuple[str, ...] = tuple(s.value for s in ActivityStatus)


@dataclass(frozen=True)
class ActivityView:
    id: int
    who: str | None  # None: hidden for this viewer (no consent)
    what: str | None
    due_date: dt.date | None
    status: str
    version: int

    @property
    def hidden(self) -> bool:
        return self.what is None


@dataclass(frozen=True)
class AgreementView:
    topic: str
    text: str | None  # None: not written yet, or hidden for this viewer
    version: int  # 0: not written yet
    hidden: bool = False


@dataclass(frozen=True)
class PlanView:
    session_id: int
    activities: tuple[ActivityView, ...]
    agreements: tuple[AgreementView, ...]
    is_open: bool
    may_update_status: bool


def _visible(row: PlanActivity | PlanAgreement, level: Disclosure, cipher: CaseCipher) -> bool:
    return (row.anonymous or level is Disclosure.FULL) and not cipher.shredded


def _activity(row: PlanActivity, level: Disclosure, cipher: CaseCipher) -> ActivityView:
    show = _visible(row, level, cipher)
    return ActivityView(
        id=row.id,
        who=cipher.decrypt("activity.who", row.who_enc) if show else None,
        what=cipher.decrypt("activity.what", row.what_enc) if show else None,
        due_date=row.due_date,
        status=row.status,
        version=row.version,
    )


async def plan_view(
    uow: UnitOfWork,
    session_id: int,
    *,
    level: Disclosure | None = None,
    table: TableRows | None = None,
) -> PlanView:
    """Step 5 for this viewer, redacted by consent like the rest of the table. Without
    ``level`` consent decides it here, and the read is audited like every read of the case
    (the caller who passes ``level`` audited it already). ``table``: rows already read for
    other viewers of the same picture."""
    table = table or TableRows(uow.db)
    session, case = await service._table_session(uow, session_id, table)
    if level is None:
        level = (await consent.disclosure(uow, case)).level
    if level is Disclosure.NOTHING:
        raise NotFound()
    return await _plan_view(uow, table, session, case, level)


async def _plan_view(
    uow: UnitOfWork, table: TableRows, session: TriageSession, case: Case, level: Disclosure
) -> PlanView:
    cipher = await table.cipher(uow.vault, case.id)
    rows = await table.activities(session.id)
    agreements = await table.agreements(session.id)
    views = []
    for topic in TOPICS:
        row = agreements.get(topic)
        if row is None:
            views.append(AgreementView(topic, None, 0))
        elif _visible(row, level, cipher):
            views.append(
                AgreementView(topic, cipher.decrypt(f"plan.{topic}", row.text_enc), row.version)
            )
        else:
            views.append(AgreementView(topic, None, row.version, hidden=True))
    return PlanView(
        session_id=session.id,
        activities=tuple(_activity(r, level, cipher) for r in rows),
        agreements=tuple(views),
        is_open=session.status != "closed",
        may_update_status=arrangement.may_keep_plan(uow.who, await table.arrangement(session.id)),
    )


def _clean(text: str, field: str, limit: int = 2000) -> str:
    text = text.strip()
    if not text:
        raise InvalidInput({field: N_("Schrijf iets op.")})
    if len(text) > limit:
        raise InvalidInput({field: N_("Dit is te lang. Maak het korter dan 2000 tekens.")})
    return text


def _check_activity(who: str, what: str) -> tuple[str, str]:
    errors: dict[str, str] = {}
    cleaned: dict[str, str] = {}
    for key, value in (("who", who), ("what", what)):
        try:
            cleaned[key] = _clean(value, key, 500 if key == "who" else 2000)
        except InvalidInput as exc:
            errors.update(exc.errors)
    if errors:
        raise InvalidInput(errors)
    return cleaned["who"], cleaned["what"]


async def _guard_activity(
    uow: UnitOfWork, case: Case, level: Disclosure, who: str, what: str, confirmed: bool
) -> None:
    # "Who" is where a name goes first: each field gets its own warning.
    await service._guard_anonymous(uow, case, level, who, confirmed, "who")
    await service._guard_anonymous(uow, case, level, what, confirmed, "what")


async def add_activity(
    uow: UnitOfWork,
    session_id: int,
    who: str,
    what: str,
    due: dt.date | None,
    *,
    confirmed: bool = False,
) -> PlanActivity:
    """Add an activity to the plan: who does what, and when. Written under the pseudonym it is
    read by everyone at the table: identifying data needs a second look (``confirmed``)."""
    who_text, what_text = _check_activity(who, what)
    session, case, level = await service._open_session(uow, session_id)
    await _guard_activity(uow, case, level, who_text, what_text, confirmed)
    cipher = await uow.vault.cipher(uow.db, case.id)
    row = PlanActivity(
        session_id=session.id,
        who_enc=cipher.encrypt("activity.who", who_text),
        what_enc=cipher.encrypt("activity.what", what_text),
        due_date=due,
        anonymous=level is not Disclosure.FULL,
        author=uow.who.actor,
    )
    uow.db.add(row)
    await uow.db.flush()
    await service._record_change(
        uow, session, case, "activity.created", row.id, f"activity={row.id}"
    )
    return row


async def update_activity(
    uow: UnitOfWork,
    session_id: int,
    activity_id: int,
    who: str,
    what: str,
    due: dt.date | None,
    version: int,
    *,
    confirmed: bool = False,
) -> PlanActivity:
    """Change an activity during the meeting; refused (StaleVersion) if someone changed it
    meanwhile. An anonymous activity stays read by everyone at the table, whoever edits it:
    identifying data needs a second look (``confirmed``)."""
    who_text, what_text = _check_activity(who, what)
    session, case, level = await service._open_session(uow, session_id)
    row = await _activity_row(uow, session.id, activity_id)
    cipher = await uow.vault.cipher(uow.db, case.id)
    if not _visible(row, level, cipher):
        raise NotAllowed()
    if row.version != version:
        raise StaleVersion()
    read_by = Disclosure.PSEUDONYMOUS if row.anonymous else level
    await _guard_activity(uow, case, read_by, who_text, what_text, confirmed)
    who_enc = cipher.encrypt("activity.who", who_text)
    what_enc = cipher.encrypt("activity.what", what_text)
    assert who_enc is not None and what_enc is not None
    row.who_enc, row.what_enc, row.due_date = who_enc, what_enc, due
    row.version += 1
    row.updated_at = utcnow()
    await uow.db.flush()
    await service._record_change(
        uow, session, case, "activity.updated", row.id, f"activity={row.id} version={row.version}"
    )
    return row


async def _activity_row(uow: UnitOfWork, session_id: int, activity_id: int) -> PlanActivity:
    row = await uow.db.get(PlanActivity, activity_id, with_for_update=True)
    if row is None or row.session_id != session_id:
        raise NotFound()
    return row


async def set_status(
    uow: UnitOfWork, session_id: int, activity_id: int, status: str, version: int
) -> PlanActivity:
    """The procesregisseur (anyone of the designated provider) or the coordinator updates an
    activity's status, also after the meeting. Refused on a stale version."""
    if status not in STATUSES:
        raise InvalidInput({"status": N_("Kies een status.")})
    session = await uow.db.get(TriageSession, session_id)
    if session is None:
        raise NotFound()
    if not await arrangement.may_update_plan(uow, session.id):
        await service._session_for(uow, session_id)  # strangers: NotFound, not a hint
        raise NotAllowed(N_("Alleen de procesregisseur of de coördinator houdt de status bij."))
    case = await uow.db.get(Case, session.case_id)
    if case is None:
        raise NotFound()
    row = await _activity_row(uow, session.id, activity_id)
    if row.version != version:
        raise StaleVersion()
    before = row.status
    row.status = status
    row.version += 1
    row.updated_at = utcnow()
    await uow.db.flush()
    await service._record_change(
        uow,
        session,
        case,
        "activity.status",
        row.id,
        f"activity={row.id} status={before}->{status} version={row.version}",
    )
    return row


async def set_agreement(
    uow: UnitOfWork,
    session_id: int,
    topic: str,
    text: str,
    version: int,
    *,
    confirmed: bool = False,
) -> PlanAgreement:
    """Write one of the plan's agreements (informing each other, the municipality, the crisis
    plan). ``version`` is what the writer saw (0: nothing yet); a save on top of someone
    else's change is refused (StaleVersion) so it is never silently lost. Text that everyone
    at the table reads (written under the pseudonym, or an anonymous agreement edited) needs
    a second look at identifying data (``confirmed``)."""
    if topic not in TOPICS:
        raise NotFound()
    cleaned = _clean(text, "text")
    session, case, level = await service._open_session(uow, session_id)
    cipher = await uow.vault.cipher(uow.db, case.id)
    row = await uow.db.scalar(
        select(PlanAgreement)
        .where(PlanAgreement.session_id == session.id, PlanAgreement.topic == topic)
        .with_for_update()
    )
    current = row.version if row else 0
    if current != version:
        raise StaleVersion()
    if row is not None and not _visible(row, level, cipher):
        raise NotAllowed()
    read_by = Disclosure.PSEUDONYMOUS if row is not None and row.anonymous else level
    await service._guard_anonymous(uow, case, read_by, cleaned, confirmed)
    encrypted = cipher.encrypt(f"plan.{topic}", cleaned)
    assert encrypted is not None
    if row is None:
        row = PlanAgreement(
            session_id=session.id,
            topic=topic,
            text_enc=encrypted,
            anonymous=level is not Disclosure.FULL,
            author=uow.who.actor,
            version=1,
        )
        try:
            async with uow.db.begin_nested():  # two first writers at once: one wins
                uow.db.add(row)
        except IntegrityError:
            raise StaleVersion() from None
    else:
        if not _visible(row, level, cipher):
            raise NotAllowed()
        row.text_enc = encrypted
        row.version += 1
        row.author = uow.who.actor
        row.updated_at = utcnow()
    await uow.db.flush()
    await service._record_change(
        uow, session, case, "plan.updated", row.id, f"topic={topic} version={row.version}"
    )
    return row
