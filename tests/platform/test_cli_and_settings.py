"""The console script and the start-up guard, as an operator uses them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from keerpunt.platform import audit
from keerpunt.platform.models import AuditEntry
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.settings import ConfigurationError, Settings

KEERPUNT = str(Path(sys.executable).with_name("keerpunt"))


def test_unsafe_settings_stop_start_up_with_a_clear_message() -> None:
    with pytest.raises(ConfigurationError, match="KEERPUNT_SECRET_KEY"):
        Settings.from_env({"KEERPUNT_SECRET_KEY": "changeme"})
    with pytest.raises(ConfigurationError, match="KEERPUNT_MASTER_KEYS"):
        Settings.from_env({"KEERPUNT_SECRET_KEY": "x" * 40, "KEERPUNT_BSN_INDEX_KEY": "y" * 40})
    assert Settings.from_env({"KEERPUNT_DEMO": "1"}).demo_mode


def test_serve_refuses_unsafe_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEERPUNT_")}
    out = subprocess.run(
        [KEERPUNT, "serve"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    assert "KEERPUNT_SECRET_KEY" in out.stderr


def _cli_env(runtime: Runtime, database_url: str) -> dict[str, str]:
    """The environment of an operator's shell for this test's database and keys."""
    s = runtime.settings
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEERPUNT_")},
        "KEERPUNT_DATABASE_URL": database_url,
        "KEERPUNT_SECRET_KEY": str(s.secret_key),
        "KEERPUNT_MASTER_KEYS": str(s.master_keys),
        "KEERPUNT_BSN_INDEX_KEY": str(s.bsn_index_key),
    }


def _keerpunt(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEERPUNT, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.anyio
async def test_audit_verify_command_detects_tampering(runtime: Runtime, database_url: str) -> None:
    async with runtime.sessionmaker() as db, db.begin():
        for i in range(3):
            await audit.record(db, None, "test.event", detail=str(i))
    env = _cli_env(runtime, database_url)

    def verify() -> subprocess.CompletedProcess[str]:
        return _keerpunt(env, "audit", "verify")

    ok = verify()
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(detail="edited"))
    bad = verify()
    assert bad.returncode == 1
    assert "row 2" in bad.stderr


@pytest.mark.anyio
async def test_an_administrator_provisions_an_organisation_its_login_and_a_user(
    runtime: Runtime, database_url: str
) -> None:
    from keerpunt.platform.models import Organisation, User

    env = _cli_env(runtime, database_url)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return _keerpunt(env, *args)

    bad = cli("org", "add", "--name", "Karakter", "--kind", "provider", "--agb", "123")
    assert bad.returncode != 0 and "8 digits" in bad.stderr
    assert (
        cli(
            "org", "add", "--name", "Karakter", "--kind", "provider", "--agb", "98000004"
        ).returncode
        == 0
    )
    oidc = cli(
        "org",
        "oidc",
        "--name",
        "Karakter",
        "--issuer",
        "https://login.karakter.example",
        "--client-id",
        "keerpunt",
    )
    assert oidc.returncode == 0 and "KEERPUNT_OIDC_SECRET_" in oidc.stdout
    added = cli(
        "user",
        "add",
        "--org",
        "Karakter",
        "--name",
        "Ruud Regie",
        "--email",
        "Ruud@Karakter.example",
        "--role",
        "triage_member",
        "--discipline",
        "regiebehandelaar",
    )
    assert added.returncode == 0, added.stderr
    async with runtime.sessionmaker() as db:
        from sqlalchemy import select

        user = await db.scalar(select(User).where(User.email == "ruud@karakter.example"))
        assert user is not None and user.role_set == {"triage_member"}
        org = await db.get(Organisation, user.organisation_id)
        assert org is not None and org.oidc_issuer == "https://login.karakter.example"
    assert await _verify_ok(runtime)

    # Their job changes, then they leave; the list shows it.
    changed = cli("user", "roles", "--email", "ruud@karakter.example", "--role", "coordinator")
    assert changed.returncode == 0, changed.stderr
    assert "Ruud Regie now has coordinator; 0 login(s) ended." in changed.stdout
    bad = cli("user", "roles", "--email", "ruud@karakter.example", "--role", "chief")
    assert bad.returncode == 2 and "'chief' is not one of" in bad.stderr
    gone = cli("user", "deactivate", "--email", "nobody@karakter.example")
    assert gone.returncode == 1 and "No user with e-mail nobody@karakter.example" in gone.stderr
    left = cli("user", "deactivate", "--email", "RUUD@karakter.example")
    assert left.returncode == 0 and "Ruud Regie deactivated" in left.stdout
    listed = cli("user", "list", "--org", "Karakter")
    assert listed.returncode == 0
    assert listed.stdout.splitlines() == [
        "Ruud Regie\truud@karakter.example\tKarakter\tcoordinator\tregiebehandelaar\tdeactivated"
    ]
    again = cli("user", "activate", "--email", "ruud@karakter.example")
    assert again.returncode == 0 and "Ruud Regie may log in again." in again.stdout
    assert await _verify_ok(runtime)


async def _verify_ok(runtime: Runtime) -> bool:
    async with runtime.sessionmaker() as db:
        return await audit.verify(db) == []


@pytest.mark.anyio
async def test_deactivating_names_what_the_person_still_carries(
    runtime: Runtime, database_url: str
) -> None:
    from tests.triage.factories import build_world

    world = await build_world(runtime)
    done = _keerpunt(_cli_env(runtime, database_url), "user", "deactivate", "--email",
                     world.expert.email)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[:2] == [
        "Ruud Regie deactivated; 0 login(s) ended.",
        "Still to hand over (tell the coordinator):",
    ]
    assert len(out) == 3 and out[2].startswith("  invited to the meeting of case K-")
    assert "Canarie" not in done.stdout  # the pseudonym, never the family's name
