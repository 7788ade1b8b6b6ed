"""The demo has the Rijnmond providers as data, one case allocated and one waiting."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from keerpunt.platform import demo
from keerpunt.platform.models import User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import allocation_service as alloc

pytestmark = pytest.mark.anyio


async def test_demo_allocation(runtime: Runtime) -> None:
    assert await demo.load(runtime)
    assert not await demo.load(runtime)  # twice changes nothing
    async with runtime.sessionmaker() as db:
        manager = await db.scalar(select(User).where(User.roles == "allocation_manager"))
    assert manager is not None
    async with runtime.unit_of_work(staff_principal(manager)) as uow:
        rows = await alloc.provider_list(uow)
        work = await alloc.worklist(uow)
        (waiting,) = work.open_requests
        proposal = await alloc.proposal_view(uow, waiting.request_id)
    assert [(r.domain, r.name) for r in rows] == [
        ("jo", "Enver"),
        ("jo", "Ihub"),
        ("jo", "Timon"),
        ("jo", "Prokino"),
        ("ggz", "Yulius"),
        ("ggz", "Youz"),
        ("lvb", "Pameijer"),
    ]
    (done,) = work.recent
    assert done.provider == "Enver" and done.turn == 1
    assert proposal.explanation.proposed == "Yulius"
    assert proposal.explanation.basis == "only_suitable"
