"""The XSUAA token endpoint and the inference gateway's bearer / resource-group checks."""

from __future__ import annotations

import base64

from simhelp import Driver, user

CHAT = "chat/completions?api-version=2024-10-21"


def test_sim_token_basic_auth_issues_opaque_bearer() -> None:
    d = Driver()
    r = d.request("POST", "/oauth/token?grant_type=client_credentials", auth=("sim-client", "sim-secret"))
    assert r.status == 200
    assert r.header("content-type") == "application/json;charset=UTF-8"
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "jti"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert d.sim.stats.token_requests == 1


def test_sim_token_form_body_credentials() -> None:
    d = Driver()
    r = d.request("POST", "/oauth/token", data=b"grant_type=client_credentials&client_id=sim-client"
                  b"&client_secret=sim-secret", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200, r.body


def test_sim_token_bad_credentials() -> None:
    d = Driver()
    r = d.request("POST", "/oauth/token?grant_type=client_credentials", auth=("sim-client", "wrong"))
    assert r.status == 401
    assert r.json() == {"error": "unauthorized", "error_description": "Bad credentials"}
    r = d.request("POST", "/oauth/token?grant_type=client_credentials")
    assert r.status == 401


def test_sim_token_expiry_uses_clock() -> None:
    d = Driver()
    token = d.token()
    assert d.post("d-gpt41", CHAT, user("hi")).status == 200
    d.clock.advance(3599)
    r = d.request("POST", f"/v2/inference/deployments/d-gpt41/{CHAT}", body=user("hi"), headers=d.headers(token))
    assert r.status == 200
    d.clock.advance(2)
    r = d.request("POST", f"/v2/inference/deployments/d-gpt41/{CHAT}", body=user("hi"), headers=d.headers(token))
    assert r.status == 401
    assert r.body == b"Jwt is expired"


def test_sim_bearer_missing_or_unknown() -> None:
    d = Driver()
    r = d.request("POST", f"/v2/inference/deployments/d-gpt41/{CHAT}", body=user("hi"),
                  headers={"AI-Resource-Group": "default"})
    assert (r.status, r.body) == (401, b"Jwt is missing")
    r = d.request("POST", f"/v2/inference/deployments/d-gpt41/{CHAT}", body=user("hi"),
                  headers=d.headers("not-issued"))
    assert (r.status, r.body) == (401, b"Jwt verification fails")
    basic = "Basic " + base64.b64encode(b"sim-client:sim-secret").decode()
    r = d.request("POST", f"/v2/inference/deployments/d-gpt41/{CHAT}", body=user("hi"),
                  headers={"Authorization": basic, "AI-Resource-Group": "default"})
    assert r.status == 401


def test_sim_resource_group_and_deployment_checks() -> None:
    d = Driver()
    token = d.token()
    headers = d.headers(token)
    del headers["AI-Resource-Group"]
    r = d.request("POST", f"/v2/inference/deployments/d-gpt41/{CHAT}", body=user("hi"), headers=headers)
    assert r.status == 400
    assert "AI-Resource-Group" in r.json()["message"]
    r = d.request("POST", f"/v2/inference/deployments/d-gpt41/{CHAT}", body=user("hi"),
                  headers=d.headers(token, group="other"))
    assert r.status == 404
    r = d.request("POST", f"/v2/inference/deployments/nope/{CHAT}", body=user("hi"), headers=d.headers(token))
    assert r.status == 404


def test_sim_requests_are_logged_with_lowercase_headers() -> None:
    d = Driver()
    d.post("d-gpt41", CHAT, user("hello"))
    last = d.sim.requests[-1]
    assert last["method"] == "POST"
    assert last["path"] == "/v2/inference/deployments/d-gpt41/chat/completions"
    assert last["query"] == {"api-version": "2024-10-21"}
    assert last["headers"]["ai-resource-group"] == "default"
    assert last["body"] == user("hello")
    assert d.sim.stats.requests["/v2/inference/deployments/d-gpt41/chat/completions"] == 1
