"""Encrypting what older versions stored in plain text: with whom a dispute step was discussed
(``DisputeStep.spoke_with``, encrypted in ``spoke_with_enc`` since revision faa57f59db60).

A migration cannot do it: the case keys are wrapped by the master keys, which only the running
configuration knows. So the app does it itself shortly after start (:func:`start`), and
``keerpunt keys encrypt-plain`` does the same on request and says how many it moved. Readers do
not depend on it: a step is read from the encrypted column when that is filled, else from the
plain one, and each step switches from one to the other in a single UPDATE.

Safe to run twice or in several processes at once: a step is only changed while its plain
text is still the text that was encrypted (compare-and-set), and short batches, each its own
transaction, keep the write lock free for the app in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import and_, select, update

from keerpunt.platform import audit
from keerpunt.platform.db import READ_ONLY
from keerpunt.platform.runtime import Runtime
from keerpunt.triage.models import Allocation, AllocationDispute, DisputeStep

__all__ = ["PlainTextMoved", "encrypt_plain_spoke_with", "start"]

log = logging.getLogger(__name__)

BATCH_SIZE = 500


@dataclass(frozen=True)
class PlainTextMoved:
    """How many steps had their plain text encrypted, and how many only had it blanked
    (already encrypted, or the case was shredded so its text has to go, not be kept)."""

    encrypted: int = 0
    blanked: int = 0

    @property
    def moved(self) -> int:
        return self.encrypted + self.blanked


_PLAIN = DisputeStep.spoke_with != ""


async def _any_plain(rt: Runtime) -> bool:
    async with rt.sessionmaker(execution_options={READ_ONLY: True}) as db:
        return await db.scalar(select(DisputeStep.id).where(_PLAIN).limit(1)) is not None


async def _batch(rt: Runtime, after: int, size: int) -> tuple[int, PlainTextMoved] | None:
    """One batch in its own transaction: the last step id seen and what was done, or None
    when there is nothing left after ``after``."""
    async with rt.writers.turn(), rt.sessionmaker() as db, db.begin():
        rows = (
            await db.execute(
                select(
                    DisputeStep.id,
                    DisputeStep.spoke_with,
                    DisputeStep.spoke_with_enc.is_not(None).label("has_enc"),
                    Allocation.case_id,
                )
                .join(AllocationDispute, AllocationDispute.id == DisputeStep.dispute_id)
                .join(Allocation, Allocation.id == AllocationDispute.allocation_id)
                .where(_PLAIN, DisputeStep.id > after)
                .order_by(DisputeStep.id)
                .limit(size)
            )
        ).all()
        if not rows:
            return None
        by_case: dict[int, list[int]] = defaultdict(list)
        encrypted = blanked = 0
        ciphers = {}
        for step_id, plain, has_enc, case_id in rows:
            if case_id not in ciphers:
                ciphers[case_id] = await rt.vault.cipher(db, case_id)
            cipher = ciphers[case_id]
            values: dict[str, object] = {"spoke_with": ""}
            if not has_enc and not cipher.shredded:
                values["spoke_with_enc"] = cipher.encrypt("dispute.spoke_with", plain)
            done = await db.execute(
                update(DisputeStep)
                .where(and_(DisputeStep.id == step_id, DisputeStep.spoke_with == plain))
                .values(values)
            )
            if done.rowcount:  # type: ignore[attr-defined]
                by_case[case_id].append(step_id)
                if "spoke_with_enc" in values:
                    encrypted += 1
                else:
                    blanked += 1
        for case_id, steps in sorted(by_case.items()):
            await audit.record(
                db,
                None,
                "dispute.plain_text_encrypted",
                case_id=case_id,
                purpose="encryption_at_rest",
                detail=f"steps={steps}",
            )
        return rows[-1].id, PlainTextMoved(encrypted, blanked)


async def encrypt_plain_spoke_with(rt: Runtime, *, batch_size: int = BATCH_SIZE) -> PlainTextMoved:
    """Encrypt every dispute step's plain "spoke with" text into its encrypted column with
    the case key and blank the plain column, in batches; audited per case and batch. A step
    of a shredded case only has its plain text blanked."""
    if not await _any_plain(rt):
        return PlainTextMoved()
    total = PlainTextMoved()
    after = 0
    while (step := await _batch(rt, after, batch_size)) is not None:
        after, done = step
        total = PlainTextMoved(total.encrypted + done.encrypted, total.blanked + done.blanked)
    return total


def start(rt: Runtime) -> asyncio.Task[None]:
    """Run it once in the background of the running app (the app's lifespan cancels it).
    The app serves meanwhile, and a failure is logged, never fatal: reading does not depend
    on it, and ``keerpunt keys encrypt-plain`` can be run by hand."""

    async def run() -> None:
        try:
            done = await encrypt_plain_spoke_with(rt)
        except Exception:
            log.exception("plain dispute texts not encrypted; run `keerpunt keys encrypt-plain`")
            return
        if done.moved:
            log.info(
                "dispute steps: %d plain text(s) encrypted, %d blanked",
                done.encrypted,
                done.blanked,
            )

    return asyncio.create_task(run(), name="encrypt-plain-text")
