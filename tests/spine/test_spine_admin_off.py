"""
The admin page is off unless C{admin_token} is configured: every C{/admin} path is then the gateway's usual
JSON 404.  With a token, the sign-in form; and the vendored chart library is the one its notice names.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from treq.testing import StubTreq

from sapproxy.web.admin import AdminBackend
from sapproxy.web.app import build_app
from sapproxy.web.frame import ServicesRef

from app_harness import Harness

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "sapproxy" / "web" / "admin" / "static"


def client(harness: Harness) -> StubTreq:
    backend = AdminBackend(store=None, keyring=None, reactor=harness.clock)
    return StubTreq(build_app(ServicesRef(harness.services), backend).resource())


def fetch(harness: Harness, stub: StubTreq, method: str, path: str) -> tuple[Any, bytes]:
    response = harness.wait(stub.request(method, "http://gw.test" + path))
    return response, harness.wait(stub.content(response))


def test_admin_is_off_without_a_token() -> None:
    harness = Harness()
    stub = client(harness)
    for method, path in [("GET", "/admin"), ("POST", "/admin/login"), ("GET", "/admin/static/chart.umd.min.js")]:
        response, body = fetch(harness, stub, method, path)
        assert response.code == 404 and b'"not_found_error"' in body, (path, body)


def test_admin_shows_the_sign_in_form_with_a_token() -> None:
    harness = Harness(admin_token="a" * 24)
    response, body = fetch(harness, client(harness), "GET", "/admin")
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/html; charset=utf-8"]
    assert b'<input type="password" id="token" name="token"' in body
    assert b"a" * 24 not in body


def test_vendored_chart_library_matches_its_notice() -> None:
    digest = hashlib.sha256((STATIC / "chart.umd.min.js").read_bytes()).hexdigest()
    assert digest == "3f288f4f26882c26b58931fb586a9b4f30370b5de38d69dc005b0bd05b08e113"
    assert "Chart.js 4.6.2" in (STATIC / "VENDORED.md").read_text()
    assert (STATIC / "LICENSE.chartjs.md").read_text().startswith("The MIT License (MIT)")
