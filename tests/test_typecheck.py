"""
The package type-checks with mypy and mypy-zope, as treq, Klein and Twisted do.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_mypy_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "sapproxy"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
