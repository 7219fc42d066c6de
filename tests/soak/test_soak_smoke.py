"""
The soak (tests/soak/soak.py) in small: 600 mixed requests with injected faults and hang-ups against a real
simulator and gateway, and the same pass criteria as the full run.  Needs ``pip install .`` (the daemons run
the installed package).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import soak  # noqa: E402


@pytest.mark.slow
@pytest.mark.integration
def test_soak_smoke(tmp_path: Path) -> None:
    result = soak.run_soak(requests=600, concurrency=32, seconds=60.0, seed=7, warmup=150, workdir=tmp_path)
    report = result.table() + "\n" + result.examples()
    assert result.sent == 600, report
    assert len(result.proxy_5xx) == 0, report
    assert len(result.proxy_stream_errors) == 0, report
    assert len(result.hung) == 0, report
    assert len(result.unterminated) == 0, report
    assert len(result.malformed) == 0, report
    assert len(result.conn_errors) == 0, report
    assert result.beyond_pool == 0, report
    assert result.sim_open_streams == 0, report
    assert result.rss_growth < 5.0, report
    assert (len(result.usage_missing), len(result.usage_duplicates), result.usage_unknown) == (0, 0, 0), report
    assert result.tracebacks == 0, report
