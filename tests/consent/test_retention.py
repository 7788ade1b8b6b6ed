"""Retention end to end: `keerpunt retention run` shreds a case so that its personal data is
found nowhere any more — not in the SQLite file or its WAL, not in a PostgreSQL dump, not in
the audit log — and cannot be decrypted; a case that is not due stays fully readable."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

from keerpunt.consent import retention
from keerpunt.consent import service as consent
from keerpunt.consent.models import KpiArrangementLine, KpiRecord
from keerpunt.consent.service import Decision, Purpose
from keerpunt.platform import audit
from keerpunt.platform.auth import create_invitation
from keerpunt.platform.db import utcnow
from keerpunt.platform.i18n import AMSTERDAM
from keerpunt.platform.models import (
    AuditEntry,
    Case,
    CaseKey,
    CaseMember,
    Invitation,
    LoginSession,
    Organisation,
    User,
)
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.schema import metadata
from keerpunt.platform.sessions import start_session
from keerpunt.platform.vault import case_rows, personal_columns
from keerpunt.triage import service as triage
from keerpunt.triage.models import TriageSession
from tests.helpers import login, make_org, make_user
from tests.triage.factories import YES

pytestmark = pytest.mark.anyio

KEERPUNT = str(Path(sys.executable).with_name("keerpunt"))


def _bsn(seed: int) -> str:
    """A valid BSN (elfproef) that differs per seed."""
    for last in range(10):
        digits = f"{seed:08d}"[-8:] + str(last)
        total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
        if (total - last) % 11 == 0:
            return digits
    return _bsn(seed + 1)


@dataclass
class Seeded:
    case_id: int
    canaries: dict[str, str]  # field -> unique text that only this case holds


@dataclass
class Staff:
    registrar: User
    coordinator: User
    expert: User
    provider: Organisation


async def _staff(rt: Runtime) -> Staff:
    wijkteam = await make_org(rt, "Wijkteam", kind="other")
    pactum = await make_org(rt, "Pactum", is_penvoerder=True, agb_code="98000005")
    karakter = await make_org(rt, "Karakter", agb_code="98000004")
    return Staff(
        await make_user(rt, wijkteam, "Wim Wijkteam", "registrar"),
        await make_user(rt, pactum, "Carla Coord", "coordinator"),
        await make_user(rt, karakter, "Ruud Regie", "triage_member", "regiebehandelaar"),
        karakter,
    )


async def _seed(rt: Runtime, staff: Staff, tag: str, seed: int, birth: dt.date) -> Seeded:
    """A case through the real services, with a unique canary in every personal field."""
    c = {
        "youth_name": f"Jeugd{tag}Kanarie",
        "parent_name": f"Ouder{tag}Kanarie",
        "jim_name": f"Jim{tag}Kanarie",
        "situation": f"Situatie{tag}Kanarie woont aan de Kanariestraat {seed}",
        "bsn": _bsn(seed),
        "birth_date": birth.isoformat(),
        "explanation": f"Uitleg{tag}Kanarie over het triageteam",
        "factor": f"Factor{tag}Kanarie op school",
        "goal": f"Doel{tag}Kanarie in eigen woorden",
    }
    async with rt.unit_of_work(staff_principal(staff.registrar)) as uow:
        case = await triage.register_case(
            uow,
            triage.Registration(
                answers=YES,
                youth_name=c["youth_name"],
                birth_date=birth,
                bsn=c["bsn"],
                situation=c["situation"],
                parent_names=(c["parent_name"],),
                jim_name=c["jim_name"],
                municipality_id=None,
            ),
        )
        members = {
            m.role: m.id
            for m in await uow.db.scalars(select(CaseMember).where(CaseMember.case_id == case.id))
        }
        for role in ("youth", "parent"):
            await consent.record_consent(
                uow,
                case,
                subject_member_id=members[role],
                purpose=Purpose.INFORMATION_EXCHANGE,
                decision=Decision.CONSENT,
                recipient_org_id=None,
                recipient_role=None,
                obtained_how="in_person",
                explanation=c["explanation"],
                valid_until=None,
            )
        await create_invitation(uow, members["parent"], days=14)
        case_id = case.id
    async with rt.sessionmaker() as db, db.begin():
        await start_session(db, how="invitation", hours=1, member_id=members["parent"])
    async with rt.unit_of_work(staff_principal(staff.coordinator)) as uow:
        session = await triage.plan_session(uow, case_id, utcnow(), [staff.expert.id])
        await triage.add_factor(uow, session.id, "school", "perpetuating", c["factor"])
        await triage.add_goal(uow, session.id, c["goal"])
        await triage.add_line(uow, session.id, staff.provider.id, "45A52", "ambulant", "3", None)
        await triage.close_session(uow, session.id)
    return Seeded(case_id, c)


async def _close(rt: Runtime, case_id: int, days_ago: int) -> None:
    """The case ended ``days_ago`` days ago (the lifecycle's closing sets closed_at)."""
    async with rt.sessionmaker() as db, db.begin():
        await db.execute(
            update(Case)
            .where(Case.id == case_id)
            .values(status="closed", closed_at=utcnow() - dt.timedelta(days=days_ago))
        )


async def _personal_values(rt: Runtime, case_id: int) -> list[bytes]:
    """Every stored ciphertext of the case, in every table, plus its wrapped data key."""
    found: list[bytes] = []
    async with rt.sessionmaker() as db:
        for table in metadata.sorted_tables:
            cols = personal_columns(table)
            where = case_rows(table, case_id) if cols else None
            if where is None:
                continue
            for row in (await db.execute(select(*(table.c[c] for c in cols)).where(where))).all():
                found.extend(v for v in row if v)
        key = await db.get(CaseKey, case_id)
        if key is not None:
            found.append(key.wrapped_dek)
    return found


async def _readable(rt: Runtime, case_id: int) -> set[str]:
    """What the key ring can still decrypt of the case."""
    out: set[str] = set()
    async with rt.sessionmaker() as db:
        cipher = await rt.vault.cipher(db, case_id)
        if cipher.shredded:
            return out
        case = await db.get(Case, case_id)
        assert case is not None
        for field, value in (
            ("case.youth_name", case.youth_name_enc),
            ("case.birth_date", case.birth_date_enc),
            ("case.bsn", case.bsn_enc),
            ("case.situation", case.situation_enc),
        ):
            out.add(cipher.decrypt(field, value) or "")
        for m in await db.scalars(select(CaseMember).where(CaseMember.case_id == case_id)):
            out.add(cipher.decrypt("member.name", m.name_enc) or "")
    return out


def _env(rt: Runtime) -> dict[str, str]:
    s = rt.settings
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEERPUNT_")},
        "KEERPUNT_DATABASE_URL": s.database_url,
        "KEERPUNT_SECRET_KEY": str(s.secret_key),
        "KEERPUNT_MASTER_KEYS": str(s.master_keys),
        "KEERPUNT_BSN_INDEX_KEY": str(s.bsn_index_key),
        "KEERPUNT_RETENTION_DAYS": "90",
    }


def _keerpunt(rt: Runtime, *args: str, command: str = "run") -> str:
    out = subprocess.run(
        [KEERPUNT, "retention", command, *args],
        env=_env(rt),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _stored_bytes(database_url: str) -> bytes:
    """The raw bytes of the database as it lies on disk (SQLite) or as a dump (PostgreSQL)."""
    if database_url.startswith("sqlite"):
        path = Path(database_url.split(":///", 1)[1])
        # Fold the WAL in, as any later connection would; then read file and log as they are.
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        wal = path.with_name(path.name + "-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    url = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    dump = subprocess.run(
        ["pg_dump", "--data-only", "--no-owner", url],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return dump.stdout


def _contains(stored: bytes, value: str | bytes, *, pg: bool) -> bool:
    raw = value.encode() if isinstance(value, str) else value
    # pg_dump writes bytea as \x + hex; SQLite keeps the bytes as they are.
    return raw in stored or (pg and raw.hex().encode() in stored)


async def test_retention_run_leaves_no_trace_of_a_shredded_case(
    runtime: Runtime, database_url: str, client: httpx.AsyncClient
) -> None:
    rt = runtime
    pg = database_url.startswith("postgresql")
    staff = await _staff(rt)
    gone = await _seed(rt, staff, "Weg", 10101010, dt.date(2012, 2, 3))
    kept = await _seed(rt, staff, "Blijft", 20202020, dt.date(2011, 5, 6))
    await _close(rt, gone.case_id, days_ago=91)
    await _close(rt, kept.case_id, days_ago=10)  # closed, but its period has not passed
    ciphertexts_gone = await _personal_values(rt, gone.case_id)
    ciphertexts_kept = await _personal_values(rt, kept.case_id)
    assert len(ciphertexts_gone) >= 10
    # Not vacuous: before the run both cases decrypt, and the search finds stored values.
    assert {gone.canaries["youth_name"], gone.canaries["parent_name"]} <= await _readable(
        rt, gone.case_id
    )
    before = await asyncio.to_thread(_stored_bytes, database_url)
    assert all(_contains(before, v, pg=pg) for v in ciphertexts_gone)

    dry = _keerpunt(rt, "--dry-run")
    assert "proefrun" in dry and f"Casus {gone.case_id} " in dry
    assert f"Casus {kept.case_id} " not in dry
    async with rt.sessionmaker() as db:
        assert await db.get(CaseKey, gone.case_id) is not None  # the dry run changed nothing
        assert await db.scalar(select(func.count()).select_from(KpiRecord)) == 0

    report = _keerpunt(rt)
    assert f"Casus {gone.case_id} " in report and "vernietigd" in report
    assert "bewaartermijn van 90 dagen" in report
    again = _keerpunt(rt, "--lang", "en")  # twice is harmless
    assert "No cases" in again

    stored = await asyncio.to_thread(_stored_bytes, database_url)
    for name, canary in {**gone.canaries, **kept.canaries}.items():
        # Plaintext personal data is never stored, for any case.
        assert not _contains(stored, canary, pg=False), name
    for value in ciphertexts_gone:
        assert not _contains(stored, value, pg=pg)  # not even the ciphertext, nor the key
    for value in ciphertexts_kept:
        assert _contains(stored, value, pg=pg)  # the other case is untouched

    async with rt.sessionmaker() as db:
        rows = (await db.scalars(select(AuditEntry))).all()
        text = "\n".join(f"{r.actor} {r.role} {r.action} {r.purpose} {r.detail}" for r in rows)
        assert not any(c in text for c in {**gone.canaries, **kept.canaries}.values())
        shreds = [r for r in rows if r.action == "case.shredded"]
        assert [(r.case_id, r.detail) for r in shreds] == [(gone.case_id, "reason=case_closed")]
        assert await audit.verify(db) == []
        case = await db.get(Case, gone.case_id)
        assert case is not None and case.shredded_at is not None and case.bsn_hash is None
        members = select(CaseMember.id).where(CaseMember.case_id == gone.case_id)
        assert not (
            await db.scalars(
                select(Invitation.id).where(
                    Invitation.member_id.in_(members), Invitation.revoked_at.is_(None)
                )
            )
        ).all()
        assert not (
            await db.scalars(
                select(LoginSession.id).where(
                    LoginSession.member_id.in_(members), LoginSession.revoked_at.is_(None)
                )
            )
        ).all()
        kpi = (await db.scalars(select(KpiRecord))).one()
        lines = (await db.scalars(select(KpiArrangementLine))).all()
    assert await _readable(rt, gone.case_id) == set()
    assert {kept.canaries["youth_name"], kept.canaries["jim_name"]} <= await _readable(
        rt, kept.case_id
    )
    # The KPI record: what the monitor needs, nothing that leads back.
    assert (kpi.age_band, kpi.reason, kpi.final_status, kpi.sessions) == (
        "12-15",
        "case_closed",
        "closed",
        1,
    )
    assert kpi.registered_month.day == 1 and kpi.closed_month is not None
    assert kpi.referrer_org_id == staff.registrar.organisation_id
    assert [(ln.provider_id, ln.help_form, ln.minutes_per_week) for ln in lines] == [
        (staff.provider.id, "ambulant", 180)
    ]
    kpi_columns = {c.name for c in KpiRecord.__table__.columns} | {
        c.name for c in KpiArrangementLine.__table__.columns
    }
    assert not kpi_columns & {"case_id", "pseudonym", "session_id", "member_id"}

    # The pages of a shredded case still open for the team, with nothing personal on them.
    await login(client, rt, user_id=staff.registrar.id)
    page = await client.get(f"/cases/{gone.case_id}")
    assert page.status_code == 200
    assert not any(c in page.text for c in gone.canaries.values())
    async with rt.sessionmaker() as db:
        session_id = await db.scalar(
            select(TriageSession.id).where(TriageSession.case_id == gone.case_id)
        )
    page = await client.get(f"/triage/sessions/{session_id}")
    assert page.status_code == 200
    assert not any(c in page.text for c in gone.canaries.values())


async def test_the_pilot_end_shreds_open_cases_too(runtime: Runtime) -> None:
    staff = await _staff(runtime)
    open_case = await _seed(runtime, staff, "Open", 30303030, dt.date(2013, 7, 8))
    today = dt.datetime.now(AMSTERDAM).date()
    running = retention.RetentionPolicy(90, today, 24)  # today is the pilot's last day
    report = await retention.run(runtime, running, today=today)
    assert report.cases == ()
    ended = retention.RetentionPolicy(90, today - dt.timedelta(days=1), 24)
    report = await retention.run(runtime, ended, today=today)
    assert [(c.case_id, c.reason) for c in report.cases] == [
        (open_case.case_id, retention.ShredReason.PILOT_ENDED)
    ]
    assert await _readable(runtime, open_case.case_id) == set()
    async with runtime.sessionmaker() as db:
        kpi = (await db.scalars(select(KpiRecord))).one()
    assert kpi.closed_month is None and kpi.reason == "pilot_ended"
    assert kpi.keep_until == retention.kpi_keep_until(today, ended)


async def test_a_closed_case_without_an_end_date_is_reported_not_kept_silently(
    runtime: Runtime,
) -> None:
    staff = await _staff(runtime)
    seeded = await _seed(runtime, staff, "Zonder", 50505050, dt.date(2012, 9, 9))
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(update(Case).where(Case.id == seeded.case_id).values(status="closed"))
    policy = retention.RetentionPolicy(90, None, 24)
    report = await retention.run(runtime, policy, today=dt.datetime.now(AMSTERDAM).date())
    assert report.cases == ()
    lines = retention.report_lines(report, policy)
    assert any(f"casus {seeded.case_id} " in line and "geen einddatum" in line for line in lines)


async def test_the_family_can_have_an_open_case_destroyed_on_request(runtime: Runtime) -> None:
    staff = await _staff(runtime)
    asked = await _seed(runtime, staff, "Verzoek", 60606060, dt.date(2010, 3, 3))
    other = await _seed(runtime, staff, "Ander", 70707070, dt.date(2010, 4, 4))
    out = await asyncio.to_thread(
        _keerpunt, runtime, str(asked.case_id), "--yes", "--lang", "en", command="shred"
    )
    assert f"Case {asked.case_id} " in out and "the family asked" in out
    assert await _readable(runtime, asked.case_id) == set()
    assert other.canaries["youth_name"] in await _readable(runtime, other.case_id)
    again = await asyncio.to_thread(
        subprocess.run,
        [KEERPUNT, "retention", "shred", str(asked.case_id), "--yes"],
        env=_env(runtime),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode != 0 and "already shredded" in again.stderr
    async with runtime.sessionmaker() as db:
        kpi = (await db.scalars(select(KpiRecord))).one()
        details = (
            await db.scalars(select(AuditEntry.detail).where(AuditEntry.action == "case.shredded"))
        ).all()
    assert kpi.reason == "requested" and kpi.sessions == 1
    assert details == ["reason=requested"]


async def test_two_runs_at_once_shred_each_case_once(runtime: Runtime) -> None:
    staff = await _staff(runtime)
    seeded = [
        await _seed(runtime, staff, f"Tegelijk{i}", 40404040 + i, dt.date(2010, 1, 2))
        for i in range(2)
    ]
    for s in seeded:
        await _close(runtime, s.case_id, days_ago=200)
    policy = retention.RetentionPolicy(90, None, 24)
    today = dt.datetime.now(AMSTERDAM).date()
    first, second = await asyncio.gather(
        retention.run(runtime, policy, today=today), retention.run(runtime, policy, today=today)
    )
    shredded = sorted(c.case_id for c in (*first.cases, *second.cases))
    assert shredded == sorted(s.case_id for s in seeded)
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(KpiRecord)) == 2
        audited = (
            await db.scalars(select(AuditEntry.case_id).where(AuditEntry.action == "case.shredded"))
        ).all()
        assert sorted(audited) == shredded
        assert await audit.verify(db) == []


async def test_kpi_records_expire_after_their_term(runtime: Runtime) -> None:
    today = dt.datetime.now(AMSTERDAM).date()
    async with runtime.sessionmaker() as db, db.begin():
        for kpi_id, keep_until in (("a" * 32, today - dt.timedelta(days=1)), ("b" * 32, today)):
            db.add(
                KpiRecord(
                    id=kpi_id,
                    age_band="0-11",
                    legal_basis="consent",
                    final_status="closed",
                    registered_month=today.replace(day=1),
                    reason="case_closed",
                    keep_until=keep_until,
                )
            )
    policy = retention.RetentionPolicy(90, None, 24)
    dry = await retention.run(runtime, policy, today=today, dry_run=True)
    assert [k.kpi_id for k in dry.kpis] == ["a" * 32]
    lines = retention.report_lines(dry, policy)
    assert any("worden verwijderd" in line for line in lines)
    done = await retention.run(runtime, policy, today=today)
    assert [k.kpi_id for k in done.kpis] == ["a" * 32]
    assert (await retention.run(runtime, policy, today=today)).kpis == ()
    async with runtime.sessionmaker() as db:
        assert (await db.scalars(select(KpiRecord.id))).all() == ["b" * 32]
        expired = (
            await db.scalars(select(AuditEntry.detail).where(AuditEntry.action == "kpi.expired"))
        ).all()
        assert expired == ["deleted=1"]


def test_free_text_of_a_case_is_stored_only_encrypted() -> None:
    """Free text about a family goes in an encrypted ``*_enc`` column, never in a plain text
    column of a table that belongs to a case (as the consent explanation once did)."""
    from sqlalchemy import Text

    for table in metadata.sorted_tables:
        if case_rows(table, 1) is None:
            continue
        plain = [c.name for c in table.columns if isinstance(c.type, Text)]
        assert not plain, f"{table.name}: {plain} hold free text in clear"


def test_every_personal_column_can_be_traced_to_its_case() -> None:
    """Shredding finds a case's rows by foreign keys: a new ``*_enc`` column anywhere must be
    reachable from ``case_file``, or it would survive the shredding."""
    for table in metadata.sorted_tables:
        if personal_columns(table):
            assert case_rows(table, 1) is not None, table.name


def test_a_row_with_two_paths_to_its_case_is_found_by_either() -> None:
    """A factor belongs to its case by its session, and also by the member it is kept for
    (niet over mij zonder mij): shredding must find it by the session even when it is kept
    for nobody; which foreign key comes first must not matter."""
    where = str(case_rows(metadata.tables["factor"], 1))
    assert "factor.session_id IN" in where and "factor.private_to_member_id IN" in where


def test_pilot_end_and_terms_come_from_the_environment() -> None:
    from keerpunt.platform.settings import ConfigurationError, Settings

    s = Settings.from_env(
        {
            "KEERPUNT_DEMO": "1",
            "KEERPUNT_PILOT_END": "2024-12-31",
            "KEERPUNT_RETENTION_DAYS": "30",
            "KEERPUNT_KPI_RETENTION_MONTHS": "36",
        }
    )
    assert retention.RetentionPolicy.from_settings(s) == retention.RetentionPolicy(
        30, dt.date(2024, 12, 31), 36
    )
    defaults = Settings.from_env({"KEERPUNT_DEMO": "1"})
    assert retention.RetentionPolicy.from_settings(defaults) == retention.RetentionPolicy(
        90, None, 24
    )
    with pytest.raises(ConfigurationError, match="KEERPUNT_PILOT_END"):
        Settings.from_env({"KEERPUNT_DEMO": "1", "KEERPUNT_PILOT_END": "31-12-2024"})
    with pytest.raises(ConfigurationError, match="KEERPUNT_RETENTION_DAYS"):
        Settings.from_env({"KEERPUNT_DEMO": "1", "KEERPUNT_RETENTION_DAYS": "-1"})
