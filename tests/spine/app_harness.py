"""
The whole gateway in memory (L{sapproxy.testing.InMemoryGateway}), under the names the spine tests use.
"""

from __future__ import annotations

from sapproxy.testing import SIMULATED_MODELS as MODELS
from sapproxy.testing import SIMULATOR_URL as SIM
from sapproxy.testing import TEST_KEY as TOKEN
from sapproxy.testing import InMemoryGateway as Harness
from sapproxy.testing import sse_data

__all__ = ["Harness", "MODELS", "SIM", "TOKEN", "sse_data"]
