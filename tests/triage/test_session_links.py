"""A link to a meeting is only shown to who may open it. Someone who sees the case but was
not invited to its meeting (the registrar, a triage-team member at another table) reads
when it is, without a link that would end in 'not found'."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from keerpunt.platform.models import Organisation
from keerpunt.platform.runtime import Runtime
from tests.helpers import login
from tests.triage.factories import build_world, make_user

pytestmark = pytest.mark.anyio


def _links(html: str, session_id: int) -> int:
    return len(re.findall(rf'href="[^"]*/triage/sessions/{session_id}"', html))


async def test_only_who_may_open_a_meeting_gets_a_link_to_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await build_world(runtime)
    async with runtime.sessionmaker() as db:
        karakter = await db.scalar(select(Organisation).where(Organisation.name == "Karakter"))
    assert karakter is not None
    other = await make_user(runtime, karakter, "Olaf Onderwijs", "triage_member", "onderwijs")
    pages = [f"/cases/{w.case_id}", "/cases", "/triage/agenda"]
    for who, invited in [(w.coordinator, True), (w.expert, True), (other, False)]:
        client.cookies.clear()
        await login(client, runtime, user_id=who.id)
        opened = await client.get(f"/triage/sessions/{w.session_id}")
        assert (opened.status_code == 200) is invited, (who.id, opened.status_code)
        for page in pages:
            r = await client.get(page)
            assert r.status_code == 200, (who.id, page, r.status_code)
            assert (_links(r.text, w.session_id) > 0) is invited, (who.id, page)
    # The registrar sees the case, and opens the meeting only if invited: the link says so.
    client.cookies.clear()
    await login(client, runtime, user_id=w.registrar.id)
    r = await client.get(f"/cases/{w.case_id}")
    opened = await client.get(f"/triage/sessions/{w.session_id}")
    assert r.status_code == 200
    assert (_links(r.text, w.session_id) > 0) is (opened.status_code == 200), opened.status_code
