"""The rows of a triage table, each read from the database once per picture of it.

A live push draws the same changed rows for every group of viewers in a room (each group
with its own consent level, language, role…). The read functions of the table
(``service.table_changes``, ``service.table_labels``, ``service.session_view``,
``arrangement.arrangement_view``, ``plan.plan_view``) take their rows from a
:class:`TableRows`: the room's fan-out makes one per batch (one read-only transaction, one
picture of the database) and hands it to every group's drawing, so a row is read once
however many groups there are. A page or fragment that reads for one viewer makes its own.

Only rows are shared, never what a viewer may see of them: consent and "niet over mij
zonder mij" are decided per viewer, on these rows, by the read functions as before. Rows
are ORM objects of the caller's session; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Hashable, Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform.crypto import CaseCipher
from keerpunt.platform.models import CaseMember, Organisation, OrgKind, User
from keerpunt.platform.vault import Vault
from keerpunt.triage.models import (
    Arrangement,
    ArrangementLine,
    Factor,
    FactorLink,
    Goal,
    GoalFactor,
    PlanActivity,
    PlanAgreement,
    SessionBoard,
    SessionParticipant,
    StepNote,
)

__all__ = ["TableRows"]

_T = TypeVar("_T")
_Item = TypeVar("_Item", Factor, Goal, StepNote)


class TableRows:
    """Reads of one session's table, remembered for the transaction of ``db``: asking again
    gives the same rows without a query. Use one only within the transaction it was made in
    (a batch, a request), never across a write."""

    def __init__(self, db: AsyncSession) -> None:
        self._db = db
        self._memo: dict[Hashable, Any] = {}

    async def _once(self, key: Hashable, load: Callable[[], Awaitable[_T]]) -> _T:
        if key not in self._memo:
            self._memo[key] = await load()
        found: _T = self._memo[key]
        return found

    async def cipher(self, vault: Vault, case_id: int) -> CaseCipher:
        """The case's cipher (its data key unwrapped once)."""
        return await self._once(("cipher", case_id), lambda: vault.cipher(self._db, case_id))

    async def board(self, session_id: int) -> SessionBoard | None:
        """The shared board (None until someone used it)."""
        return await self._once(
            ("board", session_id), lambda: self._db.get(SessionBoard, session_id)
        )

    async def arrangement(self, session_id: int) -> Arrangement | None:
        """Step 4's arrangement row (None until the first line)."""
        return await self._once(
            ("arrangement", session_id), lambda: self._db.get(Arrangement, session_id)
        )

    async def participants(self, session_id: int) -> Sequence[tuple[int, int | None]]:
        """(member id, user id) of who is invited to the session and still in the case."""

        async def load() -> Sequence[tuple[int, int | None]]:
            rows = await self._db.execute(
                select(CaseMember.id, CaseMember.user_id)
                .join(SessionParticipant, SessionParticipant.member_id == CaseMember.id)
                .where(
                    SessionParticipant.session_id == session_id,
                    CaseMember.removed_at.is_(None),
                )
            )
            return [(m, u) for m, u in rows]

        return await self._once(("participants", session_id), load)

    async def members(self, case_id: int) -> Sequence[CaseMember]:
        """Everyone who is or was a member of the case, by id (with user and organisation)."""

        async def load() -> Sequence[CaseMember]:
            q = select(CaseMember).where(CaseMember.case_id == case_id).order_by(CaseMember.id)
            return (await self._db.scalars(q)).all()

        return await self._once(("members", case_id), load)

    async def _all(self, model: type[_Item], session_id: int) -> Sequence[_Item]:
        async def load() -> Sequence[_Item]:
            q = select(model).where(model.session_id == session_id).order_by(model.id)
            return (await self._db.scalars(q)).all()

        return await self._once((model.__name__, session_id), load)

    async def _some(
        self, model: type[_Item], session_id: int, ids: Collection[int] | None
    ) -> Sequence[_Item]:
        """The session's rows of ``model`` (these ids only, when given), by id."""
        if ids is None:
            return await self._all(model, session_id)
        wanted = frozenset(ids)
        if not wanted:
            return ()
        every = self._memo.get((model.__name__, session_id))
        if every is not None:
            return [r for r in every if r.id in wanted]

        async def load() -> Sequence[_Item]:
            q = (
                select(model)
                .where(model.session_id == session_id, model.id.in_(wanted))
                .order_by(model.id)
            )
            return (await self._db.scalars(q)).all()

        return await self._once((model.__name__, session_id, wanted), load)

    async def factors(
        self, session_id: int, ids: Collection[int] | None = None
    ) -> Sequence[Factor]:
        return await self._some(Factor, session_id, ids)

    async def goals(self, session_id: int, ids: Collection[int] | None = None) -> Sequence[Goal]:
        return await self._some(Goal, session_id, ids)

    async def notes(
        self, session_id: int, ids: Collection[int] | None = None
    ) -> Sequence[StepNote]:
        return await self._some(StepNote, session_id, ids)

    async def links(
        self, session_id: int, sources: Collection[int] | None = None
    ) -> Sequence[FactorLink]:
        """The session's factor links (those from these factors, when given), by id."""
        every: Sequence[FactorLink] | None = self._memo.get(("links", session_id))
        if sources is None or every is not None:
            if every is None:

                async def load_all() -> Sequence[FactorLink]:
                    q = (
                        select(FactorLink)
                        .where(FactorLink.session_id == session_id)
                        .order_by(FactorLink.id)
                    )
                    return (await self._db.scalars(q)).all()

                every = await self._once(("links", session_id), load_all)
            return every if sources is None else [ln for ln in every if ln.source_id in sources]
        wanted = frozenset(sources)

        async def load() -> Sequence[FactorLink]:
            q = (
                select(FactorLink)
                .where(FactorLink.session_id == session_id, FactorLink.source_id.in_(wanted))
                .order_by(FactorLink.id)
            )
            return (await self._db.scalars(q)).all()

        return await self._once(("links", session_id, wanted), load)

    async def goal_factors(self, goal_ids: Collection[int]) -> dict[int, list[int]]:
        """The factors each of these goals addresses."""
        wanted = frozenset(goal_ids)
        if not wanted:
            return {}

        async def load() -> dict[int, list[int]]:
            by_goal: dict[int, list[int]] = {}
            for p in await self._db.scalars(
                select(GoalFactor).where(GoalFactor.goal_id.in_(wanted))
            ):
                by_goal.setdefault(p.goal_id, []).append(p.factor_id)
            return by_goal

        return await self._once(("goal_factors", wanted), load)

    async def providers(self) -> dict[int, str]:
        """Every care provider, by name: id -> name."""

        async def load() -> dict[int, str]:
            q = select(Organisation.id, Organisation.name).where(
                Organisation.kind == OrgKind.PROVIDER
            )
            return {r.id: r.name for r in await self._db.execute(q.order_by(Organisation.name))}

        return await self._once(("providers",), load)

    async def lines(
        self, session_id: int, revision: int | None = None
    ) -> Sequence[ArrangementLine]:
        """The session's arrangement lines (of one version of the arrangement, when given)."""

        async def load() -> Sequence[ArrangementLine]:
            q = select(ArrangementLine).where(ArrangementLine.session_id == session_id)
            if revision is not None:
                q = q.where(ArrangementLine.revision == revision)
            return (await self._db.scalars(q.order_by(ArrangementLine.id))).all()

        return await self._once(("lines", session_id, revision), load)

    async def staff_of(self, organisation_ids: Collection[int]) -> Sequence[User]:
        """The active staff of these organisations, by name."""
        wanted = frozenset(organisation_ids)
        if not wanted:
            return ()

        async def load() -> Sequence[User]:
            q = (
                select(User)
                .where(User.organisation_id.in_(wanted), User.active.is_(True))
                .order_by(User.display_name)
            )
            return (await self._db.scalars(q)).all()

        return await self._once(("staff", wanted), load)

    async def activities(self, session_id: int) -> Sequence[PlanActivity]:
        """Step 5's activities, the dated ones first, by date."""

        async def load() -> Sequence[PlanActivity]:
            q = (
                select(PlanActivity)
                .where(PlanActivity.session_id == session_id)
                .order_by(PlanActivity.due_date.is_(None), PlanActivity.due_date, PlanActivity.id)
            )
            return (await self._db.scalars(q)).all()

        return await self._once(("activities", session_id), load)

    async def agreements(self, session_id: int) -> dict[str, PlanAgreement]:
        """Step 5's agreements by topic."""

        async def load() -> dict[str, PlanAgreement]:
            q = select(PlanAgreement).where(PlanAgreement.session_id == session_id)
            return {a.topic: a for a in await self._db.scalars(q)}

        return await self._once(("agreements", session_id), load)
