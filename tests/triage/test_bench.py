"""``bench/realtime.py`` runs (two small meetings on SQLite); no time is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "realtime.py"


def test_the_realtime_bench_measures_keerpunt_the_floor_and_the_baseline() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--sessions", "2", "--participants", "4",
         "--saves", "2", "--interval", "0.5"],
        capture_output=True,
        text=True,
        timeout=110,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    rows = re.findall(r"^  (Keerpunt|floor|baseline) .* updates (\d+)\s+missed (\d+)$", out, re.M)
    # Two meetings save twice each; each save reaches the three others, in all three servers.
    assert rows == [("Keerpunt", "12", "0"), ("floor", "12", "0"), ("baseline", "12", "0")]
    assert "the floor alone is" in out
    assert "saves failed" not in out and "errors (tracebacks)" not in out
