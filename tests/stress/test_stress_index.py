"""The concurrency stress script, short: a few rounds of racing cold indexers, one of
them killed mid-parse. The long run is ``python bench/stress_index.py --rounds 300``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork, lockf and /proc")
def test_racing_cold_indexers_short(tmp_path, capsys):
    pytest.importorskip("psutil")
    import stress_index

    rounds = int(os.environ.get("PAPERKB_STRESS_ROUNDS", "2"))
    code = stress_index.main(["--vault", str(tmp_path / "v"), "--notes", "420", "--rounds", str(rounds),
                              "--procs", "2", "--workers", "2", "--kill"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{rounds} rounds x 2 cold indexers of 420 notes: 0 failed" in out
