"""
The admin page as an operator uses it, in headless Chromium against a real gateway daemon: sign in with the
token (a wrong one refused), see keys, usage charts per key and per model, deployments with health and
breakers, token state and recent errors; create a key (shown once, usable at once, limited to its models),
revoke it (refused at once); sign out.  Screenshots are kept in C{test-artifacts/admin/}.

And what must not happen: the token in a URL or a log line, a form accepted without its CSRF token or from
another origin, a session cookie readable by scripts or sent cross-site.
"""

from __future__ import annotations

import http.client
import json
import shutil
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlencode

import pytest
from conftest import need
from daemon_harness import (
    TOKEN,
    Stack,
    http_request,
    running_stack,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "admin"
ADMIN_TOKEN = "adm-" + "7f3c9e1a5b2d4c6e8f0a1b2c3d4e5f60"
GPT, HAIKU = "gpt-4.1", "anthropic--claude-4.5-haiku"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,2200",
                  "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("admin"), admin_token=ADMIN_TOKEN) as s:
        gw = s.gateway
        # Usage to show: two models on the configured token, and one request for a model nobody serves.
        for model in (GPT, GPT, HAIKU):
            reply = gw.post("/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "hi"}]})
            assert reply.status == 200, reply
        assert gw.post("/v1/chat/completions", {"model": "no-such-model", "messages": []}).status == 404
        gw.wait_usage_rows(4)
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    need(bool(chromium and driver_path), "chromium and chromium-driver (scripts/ensure-chromium installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(driver_path)), options=options)
    driver.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: Any, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, "a screenshot of a rendered page"
    return path


def table(driver: Any, table_id: str) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def wait_for(driver: Any, script: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"never true in the page: {script}")


def submitted(driver: Any, selector: str, title: str) -> None:
    """Click C{selector} and wait for the page it leads to (a click does not wait for the navigation)."""
    from selenium.webdriver.common.by import By

    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, selector).click()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            old.tag_name  # raises once the old document is gone
        except Exception:
            if driver.execute_script("return document.readyState") == "complete" and driver.title == title:
                return
        time.sleep(0.05)
    raise AssertionError(f"no page titled {title!r} after clicking {selector}; now {driver.title!r}")


def chat(stack: Stack, key: str, model: str) -> int:
    return stack.gateway.post("/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "x"}]},
                              headers={"Authorization": f"Bearer {key}"}).status


def test_admin_page_in_chromium(stack: Stack, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    base = stack.gateway.base
    browser.get(base + "/admin")
    assert browser.title == "Sign in · sapproxy admin"
    assert browser.find_element(By.ID, "token").get_attribute("type") == "password"
    shot(browser, "01-sign-in")

    browser.find_element(By.ID, "token").send_keys("not-the-token")
    submitted(browser, "#login button", "Sign in · sapproxy admin")
    assert "That is not the admin token." in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text

    browser.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
    submitted(browser, "#login button", "Dashboard · sapproxy admin")
    assert browser.current_url == base + "/admin" and ADMIN_TOKEN not in browser.current_url
    cookie = browser.get_cookie("sapproxy_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/admin"
    assert browser.execute_script("return document.cookie") == ""

    # Usage charts: drawn by the vendored Chart.js, one series per key and per model.
    keys = wait_for(browser, "var c = window.Chart && Chart.getChart('chart-keys');"
                             "return c && c.data.datasets.map(function (d) { return [d.label, d.data.reduce("
                             "function (a, b) { return a + b; }, 0)]; });")
    assert [k for k, _ in keys] == ["config#0"] and keys[0][1] > 0
    models = wait_for(browser, "var c = Chart.getChart('chart-models');"
                               "return c && c.data.datasets.map(function (d) { return d.label; });")
    assert set(models) == {GPT, HAIKU}, models
    assert len(browser.execute_script("return Chart.getChart('chart-keys').data.labels")) == 25  # 24 h, hourly
    usage = table(browser, "usage-table")
    assert usage[0][:2] == ["config#0", "4"], usage  # the 404 counts as a request, without tokens

    deployments = {row[2]: row for row in table(browser, "deployments-table")}
    assert len(deployments) == 9
    assert deployments["d-gpt41"][1] == GPT and deployments["d-gpt41"][3] == "healthy"
    assert deployments["d-gpt41"][4] == "closed" and deployments["d-gpt41"][5] == "2 requests, 0 errors"
    assert deployments["d-gpt41"][6] == "200"
    assert deployments["d-opus"][3] == "idle"
    tokens = table(browser, "tokens-table")
    assert tokens[0][:2] == ["simulated", "valid"] and int(tokens[0][2].split()[0]) > 0, tokens
    errors = table(browser, "errors-table")
    assert errors[0][1:6] == ["404", "not_found", "config#0", "/v1/chat/completions", "no-such-model"], errors
    assert table(browser, "keys-table")[0][0] == "No keys yet: create one below."
    shot(browser, "02-dashboard")

    # Create a key limited to one model: shown once, usable at once.
    browser.find_element(By.ID, "name").send_keys("browser-team")
    browser.find_element(By.ID, "rpm").send_keys("100")
    browser.find_element(By.CSS_SELECTOR, f"input[name=models][value='{GPT}']").click()
    submitted(browser, "#create-key button", "Dashboard · sapproxy admin")
    key = browser.find_element(By.ID, "new-key-value").text
    assert key.startswith("sk-sap-") and len(key) == 47
    assert key not in browser.current_url
    shot(browser, "03-key-created")
    assert chat(stack, key, GPT) == 200
    assert chat(stack, key, HAIKU) == 403
    row = next(r for r in table(browser, "keys-table") if r[0] == "browser-team")
    assert row[4:6] == ["100 rpm", GPT] and row[7] == "active", row

    # Reloading shows the key's last use, and never the key again.
    browser.get(base + "/admin")
    assert key not in browser.page_source
    stack.gateway.wait_usage_rows(6)
    browser.get(base + "/admin")
    row = next(r for r in table(browser, "keys-table") if r[0] == "browser-team")
    assert row[6] != "never used" and row[6].startswith(time.strftime("%Y-%m-%d", time.gmtime())), row
    assert next(r for r in table(browser, "usage-table") if r[0] == "browser-team")[1] == "2"  # 200 and 403
    shot(browser, "04-dashboard")

    # Revoke, confirming the browser's question: refused at once.
    browser.find_element(By.CSS_SELECTOR, "tr[data-key='browser-team'] form.revoke button").click()
    alert = browser.switch_to.alert
    assert "Revoke the key browser-team?" in alert.text
    alert.accept()
    wait_for(browser, "return document.getElementById('flash') !== null")
    assert "Revoked key browser-team" in browser.find_element(By.ID, "flash").text
    row = next(r for r in table(browser, "keys-table") if r[0] == "browser-team")
    assert row[7].startswith("revoked"), row
    assert chat(stack, key, GPT) == 401
    shot(browser, "05-key-revoked")

    submitted(browser, "header form button", "Sign in · sapproxy admin")
    browser.get(base + "/admin")
    assert browser.title == "Sign in · sapproxy admin"

    log = stack.gateway.log_text()
    assert ADMIN_TOKEN not in log and key not in log
    assert "admin page: signed in" in log and "admin page: failed sign-in" in log


def _post(base: str, path: str, form: dict[str, str], headers: dict[str, str]) -> http.client.HTTPResponse:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", path, body=urlencode(form), headers={"Content-Type": "application/x-www-form-urlencoded",
                                                               **headers})
    reply = conn.getresponse()
    reply.body = reply.read()  # type: ignore[attr-defined]
    conn.close()
    return reply


def test_admin_forms_refuse_cross_site_and_missing_csrf(stack: Stack) -> None:
    base = stack.gateway.base
    signed_in = _post(base, "/admin/login", {"token": ADMIN_TOKEN}, {})
    assert signed_in.status == 303
    cookie = signed_in.getheader("set-cookie").split(";")[0]
    page = http_request("GET", base + "/admin", headers={"Cookie": cookie})
    assert page.status == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    csrf = page.body.decode().split('name="csrf" value="', 1)[1].split('"', 1)[0]

    no_csrf = _post(base, "/admin/keys/create", {"name": "forged"}, {"Cookie": cookie})
    other_site = _post(base, "/admin/keys/create", {"name": "forged", "csrf": csrf},
                       {"Cookie": cookie, "Origin": "https://evil.example"})
    no_session = _post(base, "/admin/keys/create", {"name": "forged", "csrf": csrf}, {})
    assert (no_csrf.status, other_site.status, no_session.status) == (403, 403, 303)
    keys = http_request("GET", base + "/admin", headers={"Cookie": cookie}).body.decode()
    assert "forged" not in keys
    login_elsewhere = _post(base, "/admin/login", {"token": ADMIN_TOKEN}, {"Origin": "https://evil.example"})
    assert login_elsewhere.status == 403 and login_elsewhere.getheader("set-cookie") is None
    # The page's own files are served; nothing else under /admin is.
    chart = http_request("GET", base + "/admin/static/chart.umd.min.js")
    assert chart.status == 200 and chart.body.startswith(b"/*!\n * Chart.js v4.6.2")
    assert http_request("GET", base + "/admin/static/../config.json").status == 404
