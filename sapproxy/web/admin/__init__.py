"""
The admin web page at C{/admin}: client keys (create with limits and models, revoke, last used), usage over
time per key and per model, deployments with their health and breakers, SAP AI Core token state, recent
errors.  Server-rendered HTML with a vendored chart library; no build step.

Off unless the config sets C{admin_token} (every C{/admin} path then answers 404, like any unknown path).
Sign-in and forms are described in L{sapproxy.web.admin.sessions}.  Every response carries a strict Content
Security Policy (only the page's own files run), C{no-store} and C{DENY} framing.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any, Callable, TypeVar
from urllib.parse import parse_qs, urlsplit

from attrs import frozen
from klein import Klein
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from werkzeug.exceptions import NotFound

from sapproxy.usage.keys import KeyStoreError, create_key, list_keys, revoke_key
from sapproxy.web.admin import render
from sapproxy.web.admin.data import RANGES, overview
from sapproxy.web.admin.sessions import COOKIE, SESSION_SECONDS, Session, Sessions, csrf_ok
from sapproxy.web.frame import ServicesRef

log = Logger()
T = TypeVar("T")

_CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_STATIC = {"chart.umd.min.js": b"text/javascript; charset=utf-8", "admin.js": b"text/javascript; charset=utf-8",
           "admin.css": b"text/css; charset=utf-8", "LICENSE.chartjs.md": b"text/plain; charset=utf-8"}
_FORM_LIMIT = 64 * 1024


@frozen
class AdminBackend:
    """
    What the page needs beyond the request services: the usage store (its database and thread pool) and the
    key ring, refreshed right after a key is created or revoked here so the change is in force at once.
    """

    store: Any
    keyring: Any
    reactor: Any


def install(app: Klein, ref: ServicesRef, backend: AdminBackend | None) -> None:
    AdminPage(ref, backend).install(app)


class AdminPage:
    def __init__(self, ref: ServicesRef, backend: AdminBackend | None) -> None:
        self._ref = ref
        self._backend = backend
        self._sessions = Sessions(backend.reactor if backend is not None else _WallClock())

    # -- plumbing ------------------------------------------------------------------------------------------

    def _token(self) -> str:
        """
        The configured admin token; L{NotFound} (the gateway's JSON 404) when the page is off.
        """
        token = self._ref.current.gateway.config.admin_token if self._ref.current is not None else None
        if not token or self._backend is None:
            raise NotFound()
        return str(token)

    def _defer(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Any:
        assert self._backend is not None
        return deferToThreadPool(self._backend.reactor, self._backend.store.threadpool, fn, *args, **kwargs)

    @staticmethod
    def _headers(request: Any, status: int = 200, content_type: bytes = b"text/html; charset=utf-8") -> None:
        request.setResponseCode(status)
        headers = request.responseHeaders
        headers.setRawHeaders(b"content-type", [content_type])
        headers.setRawHeaders(b"cache-control", [b"no-store"])
        headers.setRawHeaders(b"content-security-policy", [_CSP])
        headers.setRawHeaders(b"x-frame-options", [b"DENY"])
        headers.setRawHeaders(b"x-content-type-options", [b"nosniff"])
        # Not no-referrer: with it, browsers send "Origin: null" on the page's own form posts.
        headers.setRawHeaders(b"referrer-policy", [b"same-origin"])

    def _session(self, request: Any, token: str) -> Session | None:
        return self._sessions.find(request.getCookie(COOKIE), token)

    @staticmethod
    def _same_origin(request: Any) -> bool:
        """
        A form POST from this page itself: the browser's Origin (or Sec-Fetch-Site) says so when it sends one.
        """
        site = request.getHeader(b"sec-fetch-site")
        if site is not None:
            return site in (b"same-origin", b"none")
        origin = request.getHeader(b"origin")
        if origin is None:
            return True  # not a browser (or a very old one): the CSRF token still has to match
        host = request.getHeader(b"host") or b""
        return urlsplit(origin.decode("latin-1")).netloc.encode("latin-1") == host

    @staticmethod
    def _form(request: Any) -> dict[str, list[str]]:
        if getattr(request, "body_too_large", None) is not None:
            return {}
        content = request.content
        content.seek(0)
        raw = content.read(_FORM_LIMIT + 1)
        if len(raw) > _FORM_LIMIT:
            return {}
        return parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)

    def _redirect(self, request: Any) -> bytes:
        self._headers(request, 303)
        request.setHeader(b"location", b"/admin")
        return b""

    def _refused(self, request: Any, why: str) -> bytes:
        self._headers(request, 403)
        return render.page("Refused", f'<p class="flash error">{render.e(why)}</p><p><a href="/admin">Back to the '
                           "admin page</a></p>")

    # -- routes --------------------------------------------------------------------------------------------

    def install(self, app: Klein) -> None:
        # Klein names an endpoint after its function unless told: every name here is the page's own.
        app.route("/admin", methods=["GET"], endpoint="admin_show")(self.show)
        app.route("/admin/login", methods=["POST"], endpoint="admin_login")(self.login)
        app.route("/admin/logout", methods=["POST"], endpoint="admin_logout")(self.logout)
        app.route("/admin/keys/create", methods=["POST"], endpoint="admin_create")(self.create)
        app.route("/admin/keys/revoke", methods=["POST"], endpoint="admin_revoke")(self.revoke)
        for name in _STATIC:
            app.route(f"/admin/static/{name}", methods=["GET"], endpoint=f"admin_static_{name}")(
                self._static_route(name))

    def _static_route(self, name: str) -> Callable[[Any], bytes]:
        def static(request: Any) -> bytes:
            self._token()
            body = resources.files("sapproxy.web.admin").joinpath("static", name).read_bytes()
            self._headers(request, 200, _STATIC[name])
            request.responseHeaders.setRawHeaders(b"cache-control", [b"private, max-age=3600"])
            return body

        return static

    async def show(self, request: Any) -> bytes:
        token = self._token()
        session = self._session(request, token)
        if session is None:
            self._headers(request, 200)
            return render.login()
        flash, session.flash = session.flash, ""
        return await self._dashboard(request, session, flash=flash, flash_error=flash.startswith("Could not"))

    async def _dashboard(self, request: Any, session: Session, *, status: int = 200, **extra: Any) -> bytes:
        assert self._backend is not None
        args = request.args.get(b"range") or [b"24h"]
        range_name = args[0].decode("latin-1", "replace")
        if range_name not in RANGES:
            range_name = "24h"
        services = self._ref.current
        database = self._backend.store.database
        now = time.time()
        records = await self._defer(list_keys, database)
        seen = await self._defer(overview, database, range_name, now)
        gateway = services.gateway
        breakers = {url: left for url, left in gateway.picker.breakers()}
        deployments = []
        for account_name, account in gateway.config.subaccounts.items():
            for model, urls in sorted(account.deployment_models.items()):
                for url in urls:
                    deployment_id = url.rsplit("/", 1)[-1]
                    recent = seen.deployments.get(deployment_id, {})
                    deployments.append({"subaccount": account_name, "model": model, "url": url, "id": deployment_id,
                                        "breaker": breakers.get(url, 0.0), "requests": recent.get("requests", 0),
                                        "errors": recent.get("errors", 0), "last_status": recent.get("last_status")})
        tokens = {name: provider.health() for name, provider in gateway.providers.items()}
        self._headers(request, status)
        return render.dashboard(records=records, overview=seen, csrf=session.csrf, range_name=range_name,
                                models=list(services.catalog.names), deployments=deployments, tokens=tokens, now=now,
                                **extra)

    async def login(self, request: Any) -> bytes:
        token = self._token()
        if not self._same_origin(request):
            return self._refused(request, "This form must be sent from the admin page itself.")
        if self._sessions.locked_out():
            self._headers(request, 429)
            request.setHeader(b"retry-after", b"60")
            return render.login("Too many failed sign-ins: wait a minute, then try again.")
        presented = (self._form(request).get("token") or [""])[0]
        sid = self._sessions.sign_in(presented, token)
        if sid is None:
            log.warn("admin page: failed sign-in")
            self._headers(request, 401)
            return render.login("That is not the admin token.")
        secure = b"; Secure" if request.isSecure() else b""
        request.responseHeaders.addRawHeader(
            b"set-cookie", COOKIE + b"=" + sid.encode() + b"; Path=/admin; HttpOnly; SameSite=Strict; Max-Age="
            + str(SESSION_SECONDS).encode() + secure)
        log.info("admin page: signed in")
        return self._redirect(request)

    async def logout(self, request: Any) -> bytes:
        token = self._token()
        session = self._session(request, token)
        form = self._form(request)
        if session is not None and csrf_ok(session, (form.get("csrf") or [""])[0]):
            self._sessions.sign_out(request.getCookie(COOKIE))
        request.responseHeaders.addRawHeader(b"set-cookie", COOKIE + b"=; Path=/admin; HttpOnly; SameSite=Strict; "
                                                                      b"Max-Age=0")
        return self._redirect(request)

    def _checked(self, request: Any) -> tuple[Session | None, dict[str, list[str]], bytes | None]:
        """
        The session and form of a state-changing POST, or the answer refusing it.
        """
        token = self._token()
        session = self._session(request, token)
        if session is None:
            return None, {}, self._redirect(request)
        form = self._form(request)
        if not self._same_origin(request) or not csrf_ok(session, (form.get("csrf") or [""])[0]):
            return None, {}, self._refused(request, "The form had expired or did not come from this page; reload "
                                                    "the admin page and try again.")
        return session, form, None

    async def create(self, request: Any) -> bytes:
        session, form, refusal = self._checked(request)
        if refusal is not None or session is None:
            return refusal or b""
        assert self._backend is not None

        def number(field: str) -> int | None:
            text = (form.get(field) or [""])[0].strip()
            if not text:
                return None
            value = int(text)
            if value <= 0:
                raise ValueError(field)
            return value

        name = (form.get("name") or [""])[0].strip()
        served = set(self._ref.current.catalog.names)
        models = [m for m in form.get("models", []) if m]
        try:
            rpm, tpm, days = number("rpm"), number("tpm"), number("expires_days")
        except ValueError:
            return await self._dashboard(request, session, status=400, flash="Could not create the key: limits and "
                                         "expiry must be whole numbers above zero.", flash_error=True, create_open=True)
        unknown = [m for m in models if m not in served]
        if not name or unknown:
            why = "it needs a name" if not name else f"unknown model {unknown[0]}"
            return await self._dashboard(request, session, status=400, flash=f"Could not create the key: {why}.",
                                         flash_error=True, create_open=True)
        try:
            key, record = await self._defer(create_key, self._backend.store.database, name, rpm=rpm, tpm=tpm,
                                            models=models or None,
                                            expires_in_s=days * 86400.0 if days is not None else None)
        except KeyStoreError as e:
            return await self._dashboard(request, session, status=400, flash=f"Could not create the key: {e}.",
                                         flash_error=True, create_open=True)
        await self._backend.keyring.refresh()
        log.info("admin page: created key {name} ({key_id})", name=record.name, key_id=record.key_id)
        return await self._dashboard(request, session, new_key=(record.name, key))

    async def revoke(self, request: Any) -> bytes:
        session, form, refusal = self._checked(request)
        if refusal is not None or session is None:
            return refusal or b""
        assert self._backend is not None
        name = (form.get("name") or [""])[0]
        try:
            record = await self._defer(revoke_key, self._backend.store.database, name)
        except KeyStoreError as e:
            session.flash = f"Could not revoke: {e}."
            return self._redirect(request)
        await self._backend.keyring.refresh()
        log.info("admin page: revoked key {name} ({key_id})", name=record.name, key_id=record.key_id)
        session.flash = f"Revoked key {record.name}: it is refused from now on."
        return self._redirect(request)


class _WallClock:
    @staticmethod
    def seconds() -> float:
        return time.time()
