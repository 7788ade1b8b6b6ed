"""The button and the statements over HTTP: closing in the background with progress, the
end state with a statement per provider as page, PDF and CSV, and who may read which."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.closing import Attempt, CloseJob, Closer, begin_closing
from keerpunt.settlement.service import parse_quarter
from tests.helpers import login, make_user
from tests.settlement.factories import principal
from tests.settlement.test_routes import text_of
from tests.settlement.test_run_routes import finish_closing, runs
from tests.settlement.test_statements import AFTER_Q3, Q3, close, kassier_world

pytestmark = pytest.mark.anyio

HTMX = {"HX-Request": "true"}


async def test_the_button_closes_in_the_background_and_ends_with_the_statements(
    client: httpx.AsyncClient, runtime: Runtime, app: Any
) -> None:
    w = await kassier_world(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    r = await client.post(
        "/settlement/run", data={"q": "2026Q3"}, headers={"X-CSRF-Token": csrf, **HTMX}
    )
    assert r.status_code == 200  # the answer comes at once; the work goes on behind it
    assert 'id="kp-run-progress"' in r.text and 'hx-trigger="every 1s"' in r.text
    assert "Het afsluiten is begonnen." in text_of(r.text)
    finish_closing(app)
    r = await client.get("/settlement/run/2026Q3/progress?seen=check", headers=HTMX)
    assert r.status_code == 200
    assert r.headers["hx-retarget"] == "#kp-run"
    page = text_of(r.text)
    assert "Dit kwartaal is afgesloten: 2 regels, 0 afgewezen, totaal € 624,00." in page
    assert "Klaar: het kwartaal is afgesloten." in page  # said once in the live region
    assert "Afrekening van Altra" in page and "PDF van Horizon" in page
    assert await runs(runtime) == 1

    horizon = w.region.horizon.id
    r = await client.get(f"/settlement/run/2026Q3/statement/{horizon}")
    assert r.status_code == 200
    page = text_of(r.text)
    assert "Afrekening kwartaal 3 van 2026" in page
    assert "T-100" in page and "45 45A52" in page and "€ 124,80" in page
    assert "Totaal € 624,00" in page
    assert "U betaalt door aan onderaannemers € 233,13" in page
    assert "Altra € 249,60 € 16,47 € 233,13" in page

    r = await client.get(f"/settlement/run/2026Q3/statement/{horizon}.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert f'filename="afrekening-2026Q3-{horizon}.pdf"' in r.headers["content-disposition"]
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)
    assert "Totaal: € 624,00" in text
    assert (
        await client.get(f"/settlement/run/2026Q3/statement/{horizon}.pdf")
    ).content == r.content

    r = await client.get(f"/settlement/run/2026Q3/statement/{horizon}.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.endswith(b"2026Q3,totaal,,,,,,,,,,,,62400,D\r\n")

    # The sub-provider's own statement: what it receives through the kassier.
    r = await client.get(f"/settlement/run/2026Q3/statement/{w.region.altra.id}")
    assert r.status_code == 200
    assert "Horizon € 249,60 € 16,47 € 233,13" in text_of(r.text)


async def test_a_provider_sees_only_its_own_statement(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await kassier_world(runtime)
    await close(runtime, w)
    horizon, altra = w.region.horizon.id, w.region.altra.id
    await login(client, runtime, user_id=w.altra_staff.id)
    for suffix in ("", ".pdf", ".csv"):
        assert (
            await client.get(f"/settlement/run/2026Q3/statement/{altra}{suffix}")
        ).status_code == 200
        assert (
            await client.get(f"/settlement/run/2026Q3/statement/{horizon}{suffix}")
        ).status_code == 404
    page = text_of((await client.get(f"/settlement/run/2026Q3/statement/{altra}")).text)
    assert "Wat u van de kassier ontvangt" in page and "Horizon € 249,60 € 16,47 € 233,13" in page
    assert (await client.get("/settlement/run/2026Q3/progress", headers=HTMX)).status_code == 403
    outsider = await make_user(runtime, w.region.wijkteam, "Wim Wijkteam")
    await login(client, runtime, user_id=outsider.id)
    assert (await client.get(f"/settlement/run/2026Q3/statement/{altra}")).status_code == 404


async def test_progress_is_shown_with_counts_and_said_once_per_phase(
    client: httpx.AsyncClient, runtime: Runtime, app: Any
) -> None:
    w = await kassier_world(runtime)
    await login(client, runtime, user_id=w.region.finance.id)
    # A closing under way, as the worker thread leaves it between two updates.
    closer = Closer(runtime)
    app.state.settlement_closer = closer
    closer._jobs["2026Q3"] = CloseJob(
        "2026Q3", "check", w.region.penvoerder.id, done=12_000, total=40_000
    )
    r = await client.get("/settlement/run?q=2026Q3")
    page = text_of(r.text)
    assert "Bezig met afsluiten" in page and "12.000 van 40.000 regels gecontroleerd" in page
    assert 'role="status"' in r.text and "Wordt afgewezen" not in page
    r = await client.get("/settlement/run/2026Q3/progress?seen=load", headers=HTMX)
    assert "Stap 2 van 3: de regels worden gecontroleerd." in r.text
    assert 'hx-swap-oob="innerHTML"' in r.text  # a new phase: said out loud
    r = await client.get("/settlement/run/2026Q3/progress?seen=check", headers=HTMX)
    assert "12.000 van 40.000 regels gecontroleerd" in text_of(r.text)
    assert "hx-swap-oob" not in r.text  # same phase: only the numbers on screen change
    # While the lines stream in, their number is not known yet: only how many so far.
    closer._jobs["2026Q3"] = CloseJob("2026Q3", "check", w.region.penvoerder.id, done=30_000)
    r = await client.get("/settlement/run/2026Q3/progress?seen=check", headers=HTMX)
    assert "30.000 regels gecontroleerd" in text_of(r.text) and "<progress" not in r.text
    # Finance of another organisation sees nothing of it.
    await login(client, runtime, user_id=w.region.other_finance.id)
    r = await client.get("/settlement/run/2026Q3/progress?seen=check", headers=HTMX)
    assert r.status_code == 403 and "12.000" not in r.text
    closer._jobs.clear()


async def test_a_failed_closing_says_so_in_dutch_and_leaves_nothing(
    client: httpx.AsyncClient, runtime: Runtime, app: Any
) -> None:
    w = await kassier_world(runtime)
    await login(client, runtime, user_id=w.region.finance.id)
    closer = Closer(runtime)
    app.state.settlement_closer = closer
    finance = principal(w.region.finance)
    async with runtime.unit_of_work(finance) as uow:
        begun = await begin_closing(uow, Q3, AFTER_Q3)
    assert isinstance(begun, Attempt) and begun.new
    # Someone closed the next quarter between the check and the work.
    await close(runtime, w, quarter=parse_quarter("2026Q4"), today=dt.date(2027, 1, 5))
    closer.launch(finance, Q3, AFTER_Q3, begun.job)
    finish_closing(app)
    r = await client.get("/settlement/run/2026Q3/progress?seen=write", headers=HTMX)
    page = text_of(r.text)
    assert "Een later kwartaal is al afgesloten." in page
    assert re.search(r'role="alert"[^>]*>\s*Een later kwartaal', r.text)
    assert await runs(runtime) == 1  # only 2026Q4


async def test_two_people_pressing_at_once_make_one_run(
    client: httpx.AsyncClient, runtime: Runtime, app: Any
) -> None:
    w = await kassier_world(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    press = {"data": {"q": "2026Q3"}, "headers": {"X-CSRF-Token": csrf, **HTMX}}
    one, two = await asyncio.gather(
        client.post("/settlement/run", **press),  # type: ignore[arg-type]
        client.post("/settlement/run", **press),  # type: ignore[arg-type]
    )
    assert one.status_code == two.status_code == 200
    finish_closing(app)
    again = await client.post("/settlement/run", **press)  # type: ignore[arg-type]
    assert "Dit kwartaal is afgesloten: 2 regels" in text_of(again.text)
    assert await runs(runtime) == 1
