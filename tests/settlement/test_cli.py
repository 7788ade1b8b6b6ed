"""``keerpunt settle 2026Q3`` as an operator runs it (a real process, both databases)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from keerpunt.platform.runtime import Runtime
from tests.settlement.test_delivery_routes import with_allocation
from tests.settlement.test_runs import deliver

KEERPUNT = str(Path(sys.executable).with_name("keerpunt"))
pytestmark = pytest.mark.anyio


async def test_settle_closes_once_and_gives_the_same_statement_again(
    runtime: Runtime, database_url: str, tmp_path: Path
) -> None:
    w = await with_allocation(runtime)
    await deliver(runtime, w, volume=3)
    s = runtime.settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEERPUNT_")},
        "KEERPUNT_DATABASE_URL": database_url,
        "KEERPUNT_SECRET_KEY": str(s.secret_key),
        "KEERPUNT_MASTER_KEYS": str(s.master_keys),
        "KEERPUNT_BSN_INDEX_KEY": str(s.bsn_index_key),
    }

    def settle(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KEERPUNT, "settle", *args], env=env, capture_output=True, text=True, timeout=60
        )

    first = settle(
        "2026Q3", "--as", w.region.finance.email, "--statement", str(tmp_path / "a.csv"),
        "--pdf-dir", str(tmp_path / "pdf"),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("2026Q3: closed; 1 lines, 0 rejected, total 37440 cents")
    assert first.stderr.splitlines()[:5] == [
        "Stap 1 van 3: de gegevens worden opgehaald.",
        "Stap 2 van 3: de regels worden gecontroleerd.",
        "Stap 2 van 3: de regels worden gecontroleerd. 1 van 1 regels gecontroleerd",
        "Stap 3 van 3: de afrekening wordt opgeslagen. 0 van 1 regels opgeslagen",
        "Stap 3 van 3: de afrekening wordt opgeslagen. 1 van 1 regels opgeslagen",
    ]
    (pdf,) = (tmp_path / "pdf").iterdir()
    assert pdf.name == f"afrekening-2026Q3-{w.region.horizon.id}.pdf"
    text = PdfReader(pdf).pages[0].extract_text()
    assert "Horizon" in text and "Totaal: € 374,40" in text
    again = settle(
        "2026K3", "--as", w.region.finance.email, "--statement", str(tmp_path / "b.csv"),
        "--pdf-dir", str(tmp_path / "again"),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("2026Q3: already closed;")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    # Closing again gives byte-identical PDFs: they are dated by the run, not by the clock.
    assert (tmp_path / "again" / pdf.name).read_bytes() == pdf.read_bytes()

    refused = settle("2026Q3", "--as", w.horizon_staff.email)
    assert refused.returncode != 0
    assert "U mag dit niet doen of inzien." in refused.stderr
    bad = settle("2026Q9", "--as", w.region.finance.email)
    assert bad.returncode != 0 and "Kies een kwartaal zoals 2026K3." in bad.stderr
