"""
Shared test helpers: where the recorded provider fixtures are, and the rule that CI never skips.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Recorded public provider streams, beside the project's root (never copied into it).
FIXTURES = ROOT.parent / "shared" / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def fixture_path(relative: str) -> Path:
    """
    The path of one recorded fixture; skips the test (fails it under CI) where the fixtures are absent.
    """
    path = FIXTURES / relative
    if not path.exists():
        need(False, f"recorded fixture {relative} not found under {FIXTURES}")
    return path


def need(condition: bool, reason: str) -> None:
    """
    Skip the calling test with C{reason} unless C{condition}; under C{CI=true} a missing need is a failure.
    """
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must not skip: {reason}")
    pytest.skip(reason)
