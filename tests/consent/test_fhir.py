"""A case's consents as FHIR R4 Consent resources: valid FHIR, the right mapping, pseudonymous,
only for those who record consent, and audited."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from pydantic import ValidationError
from sqlalchemy import select, update

from keerpunt.consent import service as consent
from keerpunt.consent.models import ConsentRecord
from keerpunt.consent.service import Decision, Purpose
from keerpunt.platform.models import AuditEntry, Case
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from tests.helpers import login
from tests.triage.factories import World, build_world

pytestmark = pytest.mark.anyio

EXPLANATION = "Uitgelegd aan Ma Canarie wat het RET doet."


async def _more_records(rt: Runtime, world: World) -> dict[str, int]:
    """Next to the two consents for Karakter: an objection, a withdrawn and an expired one."""
    ids: dict[str, int] = {}
    async with rt.unit_of_work(staff_principal(world.registrar)) as uow:
        case = await uow.db.get(Case, world.case_id)
        assert case is not None
        for name, purpose, decision, role in (
            ("objection", Purpose.RET_REFERRAL, Decision.OBJECTION, "triage_member"),
            ("withdrawn", Purpose.REPORT_SHARING, Decision.CONSENT, None),
            ("expired", Purpose.THIRD_PARTY_INFO, Decision.CONSENT, None),
        ):
            rec = await consent.record_consent(
                uow,
                case,
                subject_member_id=world.members["parent"],
                purpose=purpose,
                decision=decision,
                recipient_org_id=None,
                recipient_role=role,
                obtained_how="phone",
                explanation=EXPLANATION,
                valid_until=dt.date.today() + dt.timedelta(days=30),
            )
            ids[name] = rec.id
        await consent.withdraw_consent(uow, ids["withdrawn"])
    async with rt.sessionmaker() as db, db.begin():
        await db.execute(
            update(ConsentRecord)
            .where(ConsentRecord.id == ids["expired"])
            .values(valid_until=dt.date.today() - dt.timedelta(days=1))
        )
    return ids


def _by_id(bundle: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(e["resource"]["identifier"][0]["value"]): e["resource"] for e in bundle["entry"]}


async def test_the_registrar_downloads_valid_fhir_r4_consents(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    ids = await _more_records(runtime, world)
    await login(client, runtime, user_id=world.registrar.id)
    r = await client.get(f"/cases/{world.case_id}/consents.fhir.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert "attachment" in r.headers["content-disposition"]

    # Valid FHIR: the whole Bundle and each Consent parse with the FHIR models.
    bundle = r.json()
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "collection" and parsed.total == 5
    for entry in bundle["entry"]:
        Consent.model_validate(entry["resource"])

    # Pseudonymous: no name, no BSN, no birth date, no explanation text.
    for secret in ("Sem Canarie", "Ma Canarie", "Oom Kees", "111222333", EXPLANATION):
        assert secret not in r.text
    async with runtime.sessionmaker() as db:
        case = await db.get(Case, world.case_id)
        assert case is not None
    resources = _by_id(bundle)
    first = resources[min(resources)]
    assert first["patient"]["identifier"]["value"] == case.pseudonym
    assert first["patient"]["display"] == case.pseudonym
    # Keerpunt's own systems live under the installation's address.
    assert first["patient"]["identifier"]["system"] == (
        "http://testserver/fhir/NamingSystem/case-pseudonym"
    )

    # The mapping: decision, status, recipient, purpose, period.
    assert first["status"] == "active"
    assert first["provision"]["type"] == "permit"
    assert first["provision"]["purpose"][0]["code"] == "information_exchange"
    recipient = first["provision"]["actor"][0]["reference"]
    assert recipient["display"] == "Karakter"
    assert recipient["identifier"]["value"] == "98000004"  # the AGB code
    assert first["organization"][0]["display"] == "Wijkteam"  # obtained by the registrar
    objection = resources[ids["objection"]]
    assert objection["status"] == "active"
    assert objection["provision"]["type"] == "deny"
    assert objection["policyRule"]["coding"][0]["code"] == "OPTOUT"
    assert objection["provision"]["actor"][0]["reference"]["identifier"]["value"] == (
        "triage_member"
    )
    assert objection["performer"][0]["type"] == "RelatedPerson"
    withdrawn = resources[ids["withdrawn"]]
    assert withdrawn["status"] == "inactive"
    assert "end" in withdrawn["provision"]["period"]
    assert resources[ids["expired"]]["status"] == "inactive"
    assert {e["valueCode"] for e in objection["extension"]} == {"phone", "consent"}

    async with runtime.sessionmaker() as db:
        audited = (
            await db.scalars(select(AuditEntry).where(AuditEntry.action == "consent.exported"))
        ).all()
    assert [(a.case_id, a.actor, a.detail) for a in audited] == [
        (world.case_id, f"user:{world.registrar.id}", "format=fhir-r4 records=5")
    ]


async def test_only_those_who_record_consent_may_export_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    url = f"/cases/{world.case_id}/consents.fhir.json"
    await login(client, runtime, user_id=world.coordinator.id)
    assert (await client.get(url)).status_code == 200
    for who in {"user_id": world.expert.id}, {"member_id": world.members["parent"]}:
        client.cookies.clear()
        await login(client, runtime, **who)
        r = await client.get(url)
        assert r.status_code == 403
        assert "resourceType" not in r.text
    async with runtime.sessionmaker() as db:
        exported = await db.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "consent.exported")
        )
        assert exported.all() == [f"user:{world.coordinator.id}"]


async def test_the_case_page_offers_the_download_to_the_registrar_only(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    await login(client, runtime, user_id=world.registrar.id)
    assert "consents.fhir.json" in (await client.get(f"/cases/{world.case_id}")).text
    client.cookies.clear()
    await login(client, runtime, user_id=world.expert.id)
    assert "consents.fhir.json" not in (await client.get(f"/cases/{world.case_id}")).text


def test_the_fhir_models_really_check_what_they_get() -> None:
    """Not vacuous: a Consent without its required status, or with an unknown field, fails."""
    good = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"code": "59284-0"}]}],
    }
    Consent.model_validate(good)
    with pytest.raises(ValidationError):
        Consent.model_validate({k: v for k, v in good.items() if k != "status"})
    with pytest.raises(ValidationError):
        Consent.model_validate({**good, "decision": "permit"})  # an R5 field, not R4
    json.dumps(good)


def _export(runtime: Runtime, case_id: int) -> subprocess.CompletedProcess[str]:
    s = runtime.settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEERPUNT_")},
        "KEERPUNT_DATABASE_URL": s.database_url,
        "KEERPUNT_SECRET_KEY": str(s.secret_key),
        "KEERPUNT_MASTER_KEYS": str(s.master_keys),
        "KEERPUNT_BSN_INDEX_KEY": str(s.bsn_index_key),
    }
    keerpunt = str(Path(sys.executable).with_name("keerpunt"))
    return subprocess.run(
        [keerpunt, "consent", "export-fhir", str(case_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_cli_writes_the_same_bundle_and_audits_it(runtime: Runtime) -> None:
    world = await build_world(runtime)
    out = _export(runtime, world.case_id)
    assert out.returncode == 0, out.stderr
    assert Bundle.model_validate(json.loads(out.stdout)).total == 2
    missing = _export(runtime, 999999)
    assert missing.returncode != 0 and "no case 999999" in missing.stderr
    async with runtime.sessionmaker() as db:
        details = await db.scalars(
            select(AuditEntry.detail).where(AuditEntry.action == "consent.exported")
        )
        assert details.all() == ["format=fhir-r4 records=2 via=cli"]
