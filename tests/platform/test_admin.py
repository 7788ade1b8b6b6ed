"""Keeping staff accounts right: someone leaves, someone's job changes (offboarding).

Professionals log in through their own organisation, but only as a person Keerpunt knows; the
administrator ends that here, and every login the person has ends with it.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from keerpunt.platform import admin, audit
from keerpunt.platform.models import AuditEntry, LoginSession, User
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.sessions import load_principal, start_session
from tests.helpers import login
from tests.triage.factories import build_world

pytestmark = pytest.mark.anyio

RUUD = "ruud.regie@karakter.example"  # the expert of build_world


async def _open_logins(rt: Runtime, user_id: int) -> int:
    async with rt.sessionmaker() as db:
        n = await db.scalar(
            select(func.count())
            .select_from(LoginSession)
            .where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
        )
    return n or 0


async def _actions(rt: Runtime) -> list[tuple[str, str]]:
    async with rt.sessionmaker() as db:
        rows = await db.execute(
            select(AuditEntry.action, AuditEntry.detail).order_by(AuditEntry.seq)
        )
        return [(a, d) for a, d in rows]


async def test_someone_who_leaves_is_logged_out_everywhere_at_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    await login(client, runtime, user_id=world.expert.id)
    assert (await client.get(f"/cases/{world.case_id}")).status_code == 200
    async with runtime.sessionmaker() as db, db.begin():  # a second device
        phone = await start_session(db, how="test", hours=1, user_id=world.expert.id)

    async with runtime.sessionmaker() as db, db.begin():
        done = await admin.deactivate_user(db, email="  Ruud.Regie@Karakter.example ")
    assert done.user_id == world.expert.id and done.changed and done.sessions_ended == 2
    assert "Ruud Regie" in done.message and "2" in done.message

    assert await _open_logins(runtime, world.expert.id) == 0
    r = await client.get(f"/cases/{world.case_id}")
    assert r.status_code in (302, 303) and "/login" in r.headers["location"]
    async with runtime.sessionmaker() as db:
        assert await load_principal(db, phone, runtime.vault) is None
        user = await db.get(User, world.expert.id)
        assert user is not None and not user.active
        assert await audit.verify(db) == []
    assert ("admin.user_deactivated", f"user={world.expert.id} sessions_ended=2") in (
        await _actions(runtime)
    )


async def test_deactivating_twice_says_so_and_writes_nothing(runtime: Runtime) -> None:
    world = await build_world(runtime)
    async with runtime.sessionmaker() as db, db.begin():
        await admin.deactivate_user(db, email=RUUD)
    before = await _actions(runtime)
    async with runtime.sessionmaker() as db, db.begin():
        again = await admin.deactivate_user(db, email=RUUD)
    assert not again.changed and again.sessions_ended == 0
    assert "already" in again.message
    assert await _actions(runtime) == before
    # Back again (a mistake, or they return): they may log in, with no old login revived.
    async with runtime.sessionmaker() as db, db.begin():
        back = await admin.activate_user(db, email=RUUD)
    assert back.changed and back.sessions_ended == 0
    assert await _open_logins(runtime, world.expert.id) == 0
    async with runtime.sessionmaker() as db:
        user = await db.get(User, world.expert.id)
        assert user is not None and user.active
    assert (await _actions(runtime))[-1] == ("admin.user_activated", f"user={world.expert.id}")


async def test_a_new_job_takes_effect_on_the_next_login(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    await login(client, runtime, user_id=world.expert.id)
    async with runtime.sessionmaker() as db, db.begin():
        done = await admin.set_roles(
            db, email=RUUD, roles=["coordinator", "triage_member"], discipline="systeembehandelaar"
        )
    # Rights are read at login: every login under the old roles ends, so nothing runs on
    # with what the person may no longer do (an open meeting screen included).
    assert done.changed and done.sessions_ended == 1
    assert await _open_logins(runtime, world.expert.id) == 0
    async with runtime.sessionmaker() as db:
        user = await db.get(User, world.expert.id)
        assert user is not None
        assert user.role_set == {"coordinator", "triage_member"}
        assert user.discipline == "systeembehandelaar"
    assert (await _actions(runtime))[-1] == (
        "admin.user_changed",
        f"user={world.expert.id} roles=triage_member->coordinator,triage_member "
        "discipline=regiebehandelaar->systeembehandelaar sessions_ended=1",
    )
    # The same roles again: nothing to change, nobody logged out.
    await login(client, runtime, user_id=world.expert.id)
    async with runtime.sessionmaker() as db, db.begin():
        same = await admin.set_roles(db, email=RUUD, roles=["triage_member", "coordinator"])
    assert not same.changed and "no change" in same.message
    assert await _open_logins(runtime, world.expert.id) == 1


@pytest.mark.parametrize(
    ("email", "roles", "discipline", "says"),
    [
        ("nobody@karakter.example", ["coordinator"], None, "No user with e-mail"),
        (RUUD, [], None, "roles must be some of"),
        (RUUD, ["chief"], None, "roles must be some of"),
        (RUUD, ["triage_member"], "tovenaar", "discipline must be one of"),
    ],
)
async def test_a_wrong_change_is_refused_with_what_to_do(
    runtime: Runtime, email: str, roles: list[str], discipline: str | None, says: str
) -> None:
    world = await build_world(runtime)
    before = await _actions(runtime)
    with pytest.raises(admin.AdminError, match=says):
        async with runtime.sessionmaker() as db, db.begin():
            await admin.set_roles(db, email=email, roles=roles, discipline=discipline)
    with pytest.raises(admin.AdminError, match="No user with e-mail"):
        async with runtime.sessionmaker() as db, db.begin():
            await admin.deactivate_user(db, email="nobody@karakter.example")
    assert await _actions(runtime) == before
    async with runtime.sessionmaker() as db:
        user = await db.get(User, world.expert.id)
        assert user is not None and user.role_set == {"triage_member"} and user.active


async def test_the_list_shows_everyone_with_their_organisation_and_state(
    runtime: Runtime,
) -> None:
    world = await build_world(runtime)
    async with runtime.sessionmaker() as db, db.begin():
        await admin.deactivate_user(db, email=RUUD)
    async with runtime.sessionmaker() as db:
        everyone = await admin.list_users(db)
        karakter = await admin.list_users(db, organisation="Karakter")
        with pytest.raises(admin.AdminError, match="No organisation named"):
            await admin.list_users(db, organisation="Nergens")
    assert [u.email for u in karakter] == [RUUD]
    ruud = karakter[0]
    assert (ruud.name, ruud.organisation, ruud.roles, ruud.discipline, ruud.active) == (
        "Ruud Regie",
        "Karakter",
        ("triage_member",),
        "regiebehandelaar",
        False,
    )
    assert {u.user_id for u in everyone} >= {world.expert.id, world.coordinator.id}
    assert [u.organisation for u in everyone] == sorted(u.organisation for u in everyone)


async def test_what_ends_a_login_is_one_rule_for_requests_and_open_screens(
    runtime: Runtime,
) -> None:
    """``ended_logins`` (the hub) agrees with ``load_principal`` (every request): revoked,
    expired, the professional deactivated, the family member taken off the case."""
    import datetime as dt

    from sqlalchemy import update

    from keerpunt.platform.db import utcnow
    from keerpunt.platform.models import CaseMember
    from keerpunt.platform.sessions import end_session, ended_logins, token_hash

    world = await build_world(runtime)
    tokens: dict[str, str] = {}
    async with runtime.sessionmaker() as db, db.begin():
        for name, kw in {
            "coordinator": {"user_id": world.coordinator.id},
            "revoked": {"user_id": world.coordinator.id},
            "expired": {"user_id": world.coordinator.id},
            "deactivated": {"user_id": world.expert.id},
            "parent": {"member_id": world.members["parent"]},
            "removed": {"member_id": world.members["jim"]},
        }.items():
            tokens[name] = await start_session(db, how="test", hours=1, **kw)  # type: ignore[arg-type]
        await end_session(db, token_hash(tokens["revoked"]))
        await db.execute(
            update(LoginSession)
            .where(LoginSession.id == token_hash(tokens["expired"]))
            .values(expires_at=utcnow() - dt.timedelta(minutes=1))
        )
        await db.execute(
            update(CaseMember)
            .where(CaseMember.id == world.members["jim"])
            .values(removed_at=utcnow())
        )
        await db.execute(update(User).where(User.id == world.expert.id).values(active=False))
    async with runtime.sessionmaker() as db:
        ended = await ended_logins(db, {token_hash(t) for t in tokens.values()})
        for name, token in tokens.items():
            let_in = await load_principal(db, token, runtime.vault) is not None
            assert (token_hash(token) not in ended) == let_in, name
    assert ended == {
        token_hash(tokens[n]) for n in ("revoked", "expired", "deactivated", "removed")
    }
