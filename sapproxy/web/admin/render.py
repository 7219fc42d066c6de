"""
The admin page's HTML: templates from C{templates/} filled with fragments built here, every value escaped.
"""

from __future__ import annotations

import datetime
import html
import json
from importlib import resources
from string import Template
from typing import Any, Iterable, Mapping

from sapproxy import __version__
from sapproxy.usage.keys import KeyRecord
from sapproxy.web.admin.data import RANGES, Overview, Series


def _template(name: str) -> Template:
    return Template(resources.files("sapproxy.web.admin").joinpath("templates", name).read_text("utf-8"))


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def when(epoch: float | None, *, never: str = "never") -> str:
    if epoch is None:
        return never
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def page(title: str, body: str, csrf: str | None = None) -> bytes:
    signout = ""
    if csrf is not None:
        signout = (f'<form method="post" action="/admin/logout"><input type="hidden" name="csrf" value="{e(csrf)}">'
                   '<button type="submit" class="link">Sign out</button></form>')
    return _template("layout.html").substitute(title=e(title), body=body, signout=signout,
                                               version=e(__version__)).encode("utf-8")


def login(error: str = "") -> bytes:
    shown = f'<p class="flash error" role="alert">{e(error)}</p>' if error else ""
    return page("Sign in", _template("login.html").substitute(error=shown))


def _limits(record: KeyRecord) -> str:
    parts = [f"{record.rpm} rpm" if record.rpm else "", f"{record.tpm} tpm" if record.tpm else ""]
    return ", ".join(p for p in parts if p) or "none"


def _status(record: KeyRecord, now: float) -> str:
    if record.revoked is not None:
        return f'<span class="bad">revoked {e(when(record.revoked))}</span>'
    if record.expires is not None and record.expires <= now:
        return '<span class="bad">expired</span>'
    return '<span class="ok">active</span>'


def key_rows(records: Iterable[KeyRecord], last_used: Mapping[str, float], csrf: str, now: float) -> str:
    rows = []
    for r in records:
        action = ""
        if r.revoked is None:
            action = (f'<form method="post" action="/admin/keys/revoke" class="revoke" data-name="{e(r.name)}">'
                      f'<input type="hidden" name="csrf" value="{e(csrf)}"><input type="hidden" name="name" '
                      f'value="{e(r.name)}"><button type="submit" class="danger">Revoke</button></form>')
        rows.append(
            f'<tr data-key="{e(r.name)}"><td>{e(r.name)}</td><td class="mono">{e(r.key_id)}</td>'
            f"<td>{e(when(r.created))}</td><td>{e(when(r.expires))}</td><td>{e(_limits(r))}</td>"
            f"<td>{e(', '.join(r.models) if r.models is not None else 'all')}</td>"
            f"<td>{e(when(last_used.get(r.key_id), never='never used'))}</td><td>{_status(r, now)}</td>"
            f"<td>{action}</td></tr>")
    return "\n".join(rows) or '<tr><td colspan="9" class="muted">No keys yet: create one below.</td></tr>'


def _chart_series(series: Series) -> list[dict[str, Any]]:
    return [{"name": name, "tokens": values} for name, values in series.groups.items()]


def _labels(series: Series, bucket: int) -> list[str]:
    fmt = "%H:%M" if bucket < 86400 else "%m-%d"
    if bucket >= 6 * 3600 and bucket < 86400:
        fmt = "%m-%d %H:%M"
    return [datetime.datetime.fromtimestamp(b, datetime.timezone.utc).strftime(fmt) for b in series.buckets]


def dashboard(*, records: list[KeyRecord], overview: Overview, csrf: str, range_name: str, models: list[str],
              deployments: list[dict[str, Any]], tokens: Mapping[str, Mapping[str, Any]], now: float,
              flash: str = "", flash_error: bool = False, new_key: tuple[str, str] | None = None,
              create_open: bool = False) -> bytes:
    bucket = RANGES[range_name][1]
    chart = {"labels": _labels(overview.by_key, bucket), "by_key": _chart_series(overview.by_key),
             "by_model": _chart_series(overview.by_model)}
    by_key = overview.by_key
    usage_rows = "\n".join(
        f"<tr><td>{e(name)}</td><td>{by_key.requests[name]}</td><td>{by_key.tokens.get(name, 0)}</td></tr>"
        for name in sorted(by_key.requests, key=lambda n: (-by_key.tokens.get(n, 0), -by_key.requests[n], n))) or \
        '<tr><td colspan="3" class="muted">No requests in this range.</td></tr>'
    ranges = " ".join(
        f'<a href="/admin?range={name}"{" class=current" if name == range_name else ""}>{name}</a>'
        for name in RANGES)
    boxes = "".join(f'<label><input type="checkbox" name="models" value="{e(m)}"> {e(m)}</label>' for m in models)
    deployment_rows = "\n".join(
        f'<tr data-deployment="{e(d["id"])}"><td>{e(d["subaccount"])}</td><td>{e(d["model"])}</td>'
        f'<td class="mono" title="{e(d["url"])}">{e(d["id"])}</td><td>{_health(d)}</td>'
        f'<td>{"open, " + str(round(d["breaker"])) + " s left" if d["breaker"] else "closed"}</td>'
        f'<td>{_count(d["requests"], "request")}, {_count(d["errors"], "error")}</td>'
        f'<td>{e(d["last_status"] if d["last_status"] is not None else "-")}</td></tr>'
        for d in deployments)
    token_rows = "\n".join(
        f'<tr data-subaccount="{e(name)}"><td>{e(name)}</td><td>{_token_state(state)}</td>'
        f'<td>{e(str(state.get("expires_in")) + " s" if state.get("expires_in") is not None else "-")}</td>'
        f'<td>{e(state.get("fetches"))}</td><td>{e(state.get("last_error") or "-")}</td></tr>'
        for name, state in tokens.items())
    error_rows = "\n".join(
        f'<tr><td>{e(when(float(r["time"])))}</td><td class="bad">{e(r["status"])}</td><td>{e(r["error_type"])}</td>'
        f'<td>{e(r["key_name"])}</td><td>{e(r["endpoint"])}</td><td>{e(r["model"])}</td>'
        f'<td>{e(r["deployment"] or "-")}</td><td class="mono">{e(r["request_id"])}</td></tr>'
        for r in overview.errors) or '<tr><td colspan="8" class="muted">No errors recorded.</td></tr>'
    shown_flash = ""
    if flash:
        shown_flash = f'<p class="flash{" error" if flash_error else ""}" role="status" id="flash">{e(flash)}</p>'
    shown_key = ""
    if new_key is not None:
        name, key = new_key
        shown_key = (f'<div class="newkey" id="new-key"><strong>Key {e(name)} created.</strong> Copy it now: it is '
                     f'shown only this once, and it works at once.<br><code id="new-key-value">{e(key)}</code><br>'
                     "Clients send it as <code>Authorization: Bearer &lt;key&gt;</code> (OpenAI) or "
                     "<code>x-api-key: &lt;key&gt;</code> (Anthropic).</div>")
    # </script> cannot appear in JSON text inside a script element once "<" is escaped.
    chart_json = json.dumps(chart).replace("<", "\\u003c")
    body = _template("dashboard.html").substitute(
        flash=shown_flash, new_key=shown_key, key_rows=key_rows(records, overview.last_used, csrf, now),
        create_open="open" if create_open or not records else "", csrf=e(csrf), model_boxes=boxes,
        range_links=ranges, chart_data=chart_json, usage_rows=usage_rows, deployment_rows=deployment_rows,
        token_rows=token_rows, error_rows=error_rows)
    return page("Dashboard", body, csrf)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _health(d: Mapping[str, Any]) -> str:
    if d["breaker"]:
        return '<span class="bad">cooling down</span>'
    if d["requests"] and d["errors"] * 2 >= d["requests"]:
        return '<span class="bad">failing</span>'
    if d["errors"]:
        return '<span class="warn">some errors</span>'
    if not d["requests"]:
        return '<span class="muted">idle</span>'
    return '<span class="ok">healthy</span>'


def _token_state(state: Mapping[str, Any]) -> str:
    token = state.get("token")
    css = {"valid": "ok", "fetching": "warn"}.get(str(token), "bad" if state.get("last_error") else "muted")
    return f'<span class="{css}">{e(token)}</span>'
