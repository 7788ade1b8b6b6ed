"""``bench/settlement.py`` runs (a small quarter, both databases); no time is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "settlement.py"


def test_the_settlement_bench_runs_on_both_databases_and_they_agree() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--lines", "2000", "--db", "both"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("sqlite: 2,000 delivery lines, 40 allocations, 50 providers")
    assert "\npostgresql: 2,000 delivery lines" in out
    assert out.count("baseline (one SQL aggregate)") == 2
    assert out.count("quarterly run (close_quarter)") == 2
    assert out.count("peak memory of the run") == 2
    assert out.count("floor (one INSERT ... SELECT)") == 2
    runs = re.findall(r"run: ([\d,]+) lines out, ([\d,]+) rejected, .* sha256 (\w+)", out)
    assert len(runs) == 2
    for lines, rejected, _ in runs:
        # A first quarter: every line is declared or rejected, and some are rejected.
        assert int(lines.replace(",", "")) + int(rejected.replace(",", "")) == 2000
        assert int(rejected.replace(",", "")) > 0
    assert runs[0] == runs[1]  # the same statement, to the byte, on both databases
