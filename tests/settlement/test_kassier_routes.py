"""The kassier page, its payment batch download and the bank accounts page, as the kassier's
finance staff and the penvoerder use them."""

from __future__ import annotations

from importlib.resources import files
from xml.etree import ElementTree as ET

import httpx
import pytest
import xmlschema
from sqlalchemy import func, select

from keerpunt.platform.models import AuditEntry, Organisation
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.models import BankAccount
from keerpunt.settlement.sepa import NAMESPACE
from tests.helpers import login, make_user
from tests.settlement.test_kassier_run import (
    ALTRA_IBAN,
    HORIZON_IBAN,
    add_account,
    build_kassier,
    close,
)
from tests.settlement.test_routes import text_of

pytestmark = pytest.mark.anyio
NS = {"p": NAMESPACE}


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(files("sepaxml") / "schemas" / "pain.001.001.03.xsd"))


async def accounts(rt: Runtime) -> int:
    async with rt.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(BankAccount)) or 0


async def test_the_ledger_balances_on_the_page(client: httpx.AsyncClient, runtime: Runtime) -> None:
    k = await build_kassier(runtime)
    await close(runtime, k)
    await login(client, runtime, user_id=k.kassier_finance.id)
    r = await client.get("/settlement/kassier")
    assert r.status_code == 200 and "/settlement/kassier/2026Q3" in r.text
    r = await client.get("/settlement/kassier/2026Q3")
    assert r.status_code == 200
    page = text_of(r.text)
    assert "Kassier Horizon" in page
    assert "Gemeente Zwolle € 1.622,40" in page
    assert "Horizon (eigen zorg) houdt alles € 374,40 € 374,40 € 0,00" in page
    assert "Altra 6,60% van het bedrag € 1.248,00 € 82,37 € 1.165,63" in page
    assert "Totaal € 1.622,40 € 456,77 € 1.165,63" in page
    assert (
        "Controle: de gemeenten betalen € 1.622,40. De kassier houdt € 456,77 en betaalt de "
        "aanbieders € 1.165,63. Samen is dat € 1.622,40: dit klopt tot op de cent."
    ) in page
    assert "Altra NL20 INGB 0001 2345 67 € 1.165,63" in page
    assert "/settlement/kassier/2026Q3/" in r.text and "betaalopdracht.xml" in r.text


async def test_the_batch_is_valid_sepa_and_the_same_twice(
    client: httpx.AsyncClient, runtime: Runtime, schema: xmlschema.XMLSchema
) -> None:
    k = await build_kassier(runtime)
    await close(runtime, k)
    await login(client, runtime, user_id=k.w.region.finance.id)  # the penvoerder
    url = f"/settlement/kassier/2026Q3/{k.w.region.horizon.id}/betaalopdracht.xml"
    r = await client.get(url)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xml")
    assert (
        f'filename="betaalopdracht-2026Q3-{k.w.region.horizon.id}.xml"'
        in (r.headers["content-disposition"])
    )
    schema.validate(r.content.decode())
    root = ET.fromstring(r.content)
    assert root.findtext(".//p:DbtrAcct/p:Id/p:IBAN", namespaces=NS) == HORIZON_IBAN
    assert root.findtext(".//p:CdtrAcct/p:Id/p:IBAN", namespaces=NS) == ALTRA_IBAN
    assert root.findtext(".//p:GrpHdr/p:CtrlSum", namespaces=NS) == "1165.63"
    again = await client.get(url)
    assert again.content == r.content
    async with runtime.sessionmaker() as db:
        downloads = await db.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "settlement.kassier.payment_batch")
        )
    assert downloads == 2


async def test_no_account_is_a_clear_message_not_a_file(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    k = await build_kassier(runtime, accounts=False)
    await add_account(runtime, k.kassier_finance, {"iban": HORIZON_IBAN, "holder_name": "Horizon"})
    await close(runtime, k)
    await login(client, runtime, user_id=k.kassier_finance.id)
    r = await client.get("/settlement/kassier/2026Q3")
    page = text_of(r.text)
    assert "De betaalopdracht kan nog niet worden gemaakt. Dit moet eerst gebeuren:" in page
    assert "Altra heeft geen bankrekening die geldig is op" in page
    assert "betaalopdracht.xml" not in r.text
    r = await client.get(f"/settlement/kassier/2026Q3/{k.w.region.horizon.id}/betaalopdracht.xml")
    assert r.status_code == 409
    assert "Op de kassierspagina staat wat eerst moet gebeuren." in text_of(r.text)


async def test_others_get_not_found(client: httpx.AsyncClient, runtime: Runtime) -> None:
    k = await build_kassier(runtime)
    await close(runtime, k)
    horizon = k.w.region.horizon.id
    for who in (k.altra_finance, k.w.region.coordinator, k.w.horizon_staff):
        await login(client, runtime, user_id=who.id)
        assert (await client.get("/settlement/kassier/2026Q3")).status_code == 404
        r = await client.get(f"/settlement/kassier/2026Q3/{horizon}/betaalopdracht.xml")
        assert r.status_code == 404
    await login(client, runtime, user_id=k.kassier_finance.id)
    assert (await client.get("/settlement/kassier/2026Q4")).status_code == 404  # not closed
    assert (await client.get("/settlement/kassier/geen-kwartaal")).status_code == 404
    r = await client.get(f"/settlement/kassier/2026Q3/{horizon + 1000}/betaalopdracht.xml")
    assert r.status_code == 404


async def test_a_municipalitys_finance_staff_get_not_found_and_no_menu_link(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The municipality pays the kassier the total the kassier declares (its declarations
    show that); the ledger is the providers' own settlement: what the kassier keeps as its
    margin and pays on to each sub-provider. A municipality's finance staff get "not found",
    as anyone else who may not see it, also for the municipality that paid this quarter."""
    k = await build_kassier(runtime)
    await close(runtime, k)
    async with runtime.sessionmaker() as db:
        zwolle = await db.scalar(select(Organisation).where(Organisation.name == "Gemeente Zwolle"))
    assert zwolle is not None and zwolle.kind == "municipality"
    gerda = await make_user(runtime, zwolle, "Gerda Gemeente", "finance")
    await login(client, runtime, user_id=gerda.id)
    assert (await client.get("/settlement/kassier")).status_code == 404
    assert (await client.get("/settlement/kassier/2026Q3")).status_code == 404
    horizon = k.w.region.horizon.id
    r = await client.get(f"/settlement/kassier/2026Q3/{horizon}/betaalopdracht.xml")
    assert r.status_code == 404
    page = await client.get("/cases")
    assert page.status_code == 200 and "/settlement/kassier" not in page.text


async def test_recording_an_account_and_a_change(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    k = await build_kassier(runtime, accounts=False)
    csrf = await login(client, runtime, user_id=k.altra_finance.id)
    r = await client.get("/settlement/bank-accounts")
    assert r.status_code == 200
    assert "Er is nu geen geldige bankrekening." in text_of(r.text)
    assert 'name="organisation_id"' not in r.text  # a provider records only its own
    form = {
        "iban": "nl20 ingb 0001 2345 67",
        "holder_name": "Altra Zorg",
        "valid_from": "2026-01-01",
    }
    r = await client.post("/settlement/bank-accounts", data=form, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 303
    r = await client.get(r.headers["location"])
    page = text_of(r.text)
    assert "De bankrekening is opgeslagen: NL20 INGB 0001 2345 67 van Altra" in page
    assert "INGBNL2A" in page  # the BIC, found from the IBAN
    form |= {"iban": "NL39RABO0300065264", "valid_from": "2026-03-01"}
    r = await client.post("/settlement/bank-accounts", data=form, headers={"X-CSRF-Token": csrf})
    r = await client.get(r.headers["location"])
    page = text_of(r.text)
    assert "Nu geldig: NL39 RABO 0300 0652 64" in page
    assert "1 januari 2026 tot en met 28 februari 2026" in page  # the old one stays
    assert await accounts(runtime) == 2
    async with runtime.sessionmaker() as db:
        actions = list(await db.scalars(select(AuditEntry.action)))
    assert actions.count("settlement.bank_account.add") == 2
    # Without the CSRF token nothing is saved.
    r = await client.post("/settlement/bank-accounts", data=form)
    assert r.status_code == 403 and await accounts(runtime) == 2


@pytest.mark.parametrize(
    ("iban", "message"),
    [
        ("NL91ABNA0417164301", "De controlecijfers van dit IBAN kloppen niet."),
        ("NL91ABNA041716430", "Dit IBAN heeft te veel of te weinig tekens."),
        ("XX91ABNA0417164300", "Dit IBAN begint niet met een bekende landcode"),
        ("", "Vul het IBAN in"),
    ],
)
async def test_a_wrong_iban_is_refused_with_a_reason(
    client: httpx.AsyncClient, runtime: Runtime, iban: str, message: str
) -> None:
    k = await build_kassier(runtime, accounts=False)
    csrf = await login(client, runtime, user_id=k.altra_finance.id)
    form = {"iban": iban, "holder_name": "Altra", "valid_from": "2026-01-01"}
    r = await client.post("/settlement/bank-accounts", data=form, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422
    page = text_of(r.text)
    assert message in page and "Er is niets opgeslagen." in page
    assert f'value="{iban}"' in r.text  # what was typed stays
    assert await accounts(runtime) == 0


async def test_the_penvoerder_records_for_a_provider(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    k = await build_kassier(runtime, accounts=False)
    csrf = await login(client, runtime, user_id=k.w.region.finance.id)
    r = await client.get("/settlement/bank-accounts")
    assert 'name="organisation_id"' in r.text
    form = {"iban": ALTRA_IBAN, "holder_name": "Altra", "valid_from": "2026-01-01"}
    r = await client.post(
        "/settlement/bank-accounts",
        data=form,
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert r.status_code == 422 and "Kies een organisatie." in r.text
    assert r.text.lstrip().startswith('<div id="kp-bank-accounts">')
    form["organisation_id"] = str(k.w.region.altra.id)
    r = await client.post(
        "/settlement/bank-accounts", data=form, headers={"X-CSRF-Token": csrf, "HX-Request": "true"}
    )
    assert r.status_code == 200 and "De bankrekening is opgeslagen" in text_of(r.text)
    # A provider cannot record another organisation's account.
    csrf = await login(client, runtime, user_id=k.kassier_finance.id)
    form["iban"] = HORIZON_IBAN
    r = await client.post("/settlement/bank-accounts", data=form, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403 and await accounts(runtime) == 1


async def test_a_date_the_bank_cannot_use_is_refused_with_a_reason(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    k = await build_kassier(runtime)
    await close(runtime, k)
    await login(client, runtime, user_id=k.kassier_finance.id)
    r = await client.get("/settlement/kassier/2026Q3?date=2026-10-01")
    assert r.status_code == 400
    assert "Kies een uitvoerdatum na de dag waarop het kwartaal is afgesloten." in text_of(r.text)
    assert 'value="2026-10-01"' in r.text and 'aria-invalid="true"' in r.text
    url = f"/settlement/kassier/2026Q3/{k.w.region.horizon.id}/betaalopdracht.xml"
    r = await client.get(url + "?date=morgen")
    assert r.status_code == 400 and "Vul een datum in" in text_of(r.text)
