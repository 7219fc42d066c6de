"""
The simulated AI Core as a Klein app: XSUAA token endpoint, the inference gateway's auth and routing, fault
injection, and the C{/_sim} control endpoints that let a test drive a separate simulator process.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from attrs import define, field
from klein import Klein
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from . import bedrock_api, converse_api, lm_api, openai_api, vertex_api
from .call import Call
from .config import DeploymentSpec, SimulatorConfig
from .directives import Directive, extract_directive
from .faults import AI_API, TOKEN, ArmedFault, FaultController
from .replies import JsonReply, Reply, StreamReply
from .streaming import EventStream

_log = Logger()

DEPLOYMENT_PREFIX = "/v2/inference/deployments/"
MAX_LOGGED_REQUESTS = 1000


@define
class SimulatorStats:
    """Counters tests and benchmarks read: token requests, requests by path, streams open now."""

    token_requests: int = 0
    requests: Counter[str] = field(factory=Counter)
    open_streams: int = 0
    streams_started: int = 0
    events_written: int = 0
    bytes_written: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"token_requests": self.token_requests, "requests": dict(self.requests),
                "open_streams": self.open_streams, "streams_started": self.streams_started,
                "events_written": self.events_written, "bytes_written": self.bytes_written}


def _user_text_for(kind: str, subpath: str, body: Any) -> str:
    if kind == "openai":
        return openai_api.user_text(body)
    if kind == "vertex":
        return vertex_api.user_text(body)
    if subpath.startswith("converse"):
        return converse_api.user_text(body)
    return bedrock_api.user_text(body)


def _handler_for(kind: str, subpath: str) -> Callable[[Call], Reply]:
    if kind == "openai":
        return openai_api.handle
    if kind == "vertex":
        return vertex_api.handle
    if subpath.startswith("converse"):
        return converse_api.handle
    return bedrock_api.handle


class Simulator:
    """
    One simulated AI Core. C{config} is fixed; C{faults}, C{stats} and C{requests} are the live state tests
    read and steer.
    """

    def __init__(self, config: SimulatorConfig, clock: IReactorTime) -> None:
        self.config = config
        self.clock = clock
        self.faults = FaultController()
        self.stats = SimulatorStats()
        self.requests: deque[dict[str, Any]] = deque(maxlen=MAX_LOGGED_REQUESTS)
        self._tokens: dict[str, float] = {}
        self._seq = 0
        self._prompt_cache: set[str] = set()
        #: The tenant's deployments now (the AI API lists them; only RUNNING ones answer inference calls).
        self.deployments = lm_api.DeploymentTable.of(config.deployments)
        self.app = Klein()
        self._routes()

    def resource(self) -> IResource:
        return self.app.resource()

    def issued_tokens(self) -> Mapping[str, float]:
        """Tokens handed out and their expiry times (clock seconds)."""
        return dict(self._tokens)

    # routing

    def _routes(self) -> None:
        app = self.app

        @app.route("/oauth/token", methods=["POST"])
        def token(request: IRequest) -> Any:
            return self._token(request)

        @app.route("/_sim/faults", methods=["POST", "DELETE"])
        def faults(request: IRequest) -> Any:
            return self._control_faults(request)

        @app.route("/_sim/stats", methods=["GET"])
        def stats(request: IRequest) -> Any:
            return self._json(request, JsonReply(200, {**self.stats.as_json(), "faults": self.faults.snapshot()}))

        @app.route("/_sim/requests", methods=["GET"])
        def requests(request: IRequest) -> Any:
            limit = request.args.get(b"limit", [b""])[0]  # type: ignore[attr-defined]
            logged = list(self.requests)
            if limit.isdigit():
                logged = logged[-int(limit):] if int(limit) else []
            return self._json(request, JsonReply(200, logged))

        @app.route("/_sim/deployments", methods=["POST"])
        def put_deployment(request: IRequest) -> Any:
            return self._control_deployment(request)

        @app.route("/_sim/deployments/<deployment_id>", methods=["DELETE"])
        def delete_deployment(request: IRequest, deployment_id: str) -> Any:
            removed = self.deployments.remove(deployment_id)
            return self._json(request, JsonReply(200 if removed else 404, {"removed": removed}))

        @app.route("/v2/lm/deployments", methods=["GET"])
        def lm_deployments(request: IRequest) -> Any:
            return self._ai_api(request, "/v2/lm/deployments", lambda base, query: (
                200, self.deployments.listing(base, query)))

        @app.route("/v2/lm/deployments/<deployment_id>", methods=["GET"])
        def lm_deployment(request: IRequest, deployment_id: str) -> Any:
            def one(base: str, query: Mapping[str, str]) -> tuple[int, Any]:
                if deployment_id not in self.deployments.specs:
                    return 404, {"error": {"code": "03000", "message": f"Deployment {deployment_id} not found",
                                           "requestId": ""}}
                return 200, self.deployments.resource(deployment_id, base)
            return self._ai_api(request, "/v2/lm/deployments/" + deployment_id, one)

        @app.route("/v2/admin/resourceGroups", methods=["GET"])
        def resource_groups(request: IRequest) -> Any:
            return self._ai_api(request, "/v2/admin/resourceGroups", lambda base, query: (
                200, lm_api.resource_groups([self.config.resource_group], self.config.identityzoneid or "tenant")),
                needs_group=False)

        @app.route("/v2/inference/deployments/<deployment_id>/<path:rest>", methods=["POST"])
        def inference(request: IRequest, deployment_id: str, rest: str) -> Any:
            return ensureDeferred(self._inference(request, deployment_id, rest))

        from . import vendors

        vendors.install(self)

    # helpers

    @staticmethod
    def _json(request: IRequest, reply: JsonReply) -> bytes:
        request.setResponseCode(reply.status)
        request.setHeader(b"content-type", reply.content_type.encode())
        for name, value in reply.headers.items():
            request.setHeader(name.encode(), value.encode())
        return reply.encoded()

    def _record(self, request: IRequest, path: str, body: Any) -> dict[str, str]:
        query = {k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace")
                 for k, v in parse_qs(request.uri.partition(b"?")[2], keep_blank_values=True).items()}
        headers = {k.decode("latin-1").lower(): ", ".join(v.decode("latin-1") for v in vs)
                   for k, vs in request.requestHeaders.getAllRawHeaders()}
        self.requests.append({"method": request.method.decode(), "path": path, "query": query,
                              "headers": headers, "body": body, "time": self.clock.seconds()})
        self.stats.requests[path] += 1
        return query

    @staticmethod
    def _read_json(request: IRequest) -> tuple[Any, bool]:
        raw = request.content.read() if request.content is not None else b""
        if not raw:
            return None, True
        try:
            return json.loads(raw), True
        except ValueError:
            return raw.decode("utf-8", "replace"), False

    def _abort(self, request: IRequest) -> Deferred[bytes]:
        transport = getattr(getattr(request, "channel", None), "transport", None)
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        elif transport is not None:
            transport.loseConnection()
        # Never fires by itself: Klein cancels it when the connection is gone.
        return Deferred()

    # XSUAA

    def _token(self, request: IRequest) -> Any:
        self.stats.token_requests += 1
        body_args: dict[bytes, list[bytes]] = getattr(request, "args", {}) or {}
        query = self._record(request, "/oauth/token", {k.decode(): [x.decode() for x in v]
                                                        for k, v in body_args.items()
                                                        if k not in (b"client_secret",)})
        armed = self.faults.take(TOKEN, token_endpoint=True)
        if armed is not None:
            if armed.fault == "token_down" or armed.fault == "503":
                return self._json(request, JsonReply(503, {"error": "service_unavailable",
                                                           "error_description": "UAA is unavailable"}))
            if armed.fault == "500":
                return self._json(request, JsonReply(500, {"error": "server_error",
                                                           "error_description": "Internal Server Error"}))
            if armed.fault == "429":
                return self._json(request, JsonReply(429, {"error": "too_many_requests",
                                                           "error_description": "Rate limit exceeded"},
                                                     headers={"Retry-After": str(armed.retry_after)}))
            if armed.fault in ("reset_before_headers", "reset_mid_stream"):
                return self._abort(request)
        grant = query.get("grant_type") or _first(body_args, b"grant_type")
        client_id, client_secret = _basic_auth(request)
        if client_id is None:
            client_id = _first(body_args, b"client_id")
            client_secret = _first(body_args, b"client_secret")
        # An X.509 client sends only its id: the certificate the TLS handshake verified authenticates it.
        by_certificate = client_secret is None and _peer_certificate(request) is not None
        if client_id != self.config.clientid or (client_secret != self.config.clientsecret and not by_certificate):
            return self._json(request, JsonReply(401, {"error": "unauthorized",
                                                       "error_description": "Bad credentials"}))
        if grant != "client_credentials":
            return self._json(request, JsonReply(400, {"error": "unsupported_grant_type",
                                                       "error_description": f"Unsupported grant type: {grant}"}))
        now = self.clock.seconds()
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        token = secrets.token_urlsafe(48)
        self._tokens[token] = now + self.config.token_expires_in
        body: dict[str, Any] = {
            "access_token": token, "token_type": "bearer", "expires_in": self.config.token_expires_in,
            "scope": "uaa.resource", "jti": secrets.token_hex(16),
        }
        return self._json(request, JsonReply(200, body, content_type="application/json;charset=UTF-8"))

    # control

    def _control_faults(self, request: IRequest) -> bytes:
        if request.method == b"DELETE":
            self.faults.clear()
            return self._json(request, JsonReply(200, {"faults": []}))
        body, ok = self._read_json(request)
        if not ok or not isinstance(body, Mapping) or "fault" not in body:
            return self._json(request, JsonReply(400, {"error": "expected JSON {deployment, fault, count}"}))
        try:
            fault_after = body.get("fault_after")
            delay = body.get("delay")
            self.faults.set(str(body.get("deployment", "*")), str(body["fault"]), int(body.get("count", 1)),
                            retry_after=int(body.get("retry_after", 1)),
                            fault_after=int(fault_after) if fault_after is not None else None,
                            delay=float(delay) if delay is not None else None)
        except (TypeError, ValueError) as e:
            return self._json(request, JsonReply(400, {"error": str(e)}))
        return self._json(request, JsonReply(200, {"faults": self.faults.snapshot()}))

    # AI API

    def _ai_api(self, request: IRequest, path: str,
                answer: Callable[[str, Mapping[str, str]], tuple[int, Any]], *, needs_group: bool = True) -> Any:
        query = self._record(request, path, None)
        armed = self.faults.take(AI_API, any_target=False)
        if armed is not None:
            if armed.fault in ("reset_before_headers", "reset_mid_stream"):
                return self._abort(request)
            status = int(armed.fault) if armed.fault.isdigit() else 503
            return self._json(request, JsonReply(status, {"error": {"code": str(status),
                                                                    "message": "AI API unavailable"}}))
        auth_error = self._check_bearer(request, AI_API)
        if auth_error is not None:
            return self._json(request, auth_error)
        group = request.getHeader(b"ai-resource-group")
        if needs_group and group is None:
            return self._json(request, JsonReply(400, {"error": {"code": "03000", "message": "Missing header "
                                                                 "parameter 'AI-Resource-Group'"}}))
        if needs_group and group is not None and group.decode("latin-1") != self.config.resource_group:
            return self._json(request, JsonReply(404, {"error": {
                "code": "03000", "message": f"Resource group {group.decode('latin-1')} not found"}}))
        host = (request.getHeader(b"host") or b"127.0.0.1").decode("latin-1")
        scheme = "https" if request.isSecure() else "http"
        status, body = answer(f"{scheme}://{host}", query)
        return self._json(request, JsonReply(status, body))

    def _control_deployment(self, request: IRequest) -> bytes:
        body, ok = self._read_json(request)
        if not ok or not isinstance(body, Mapping) or not isinstance(body.get("id"), str):
            return self._json(request, JsonReply(400, {"error": "expected JSON {id, kind, model, status}"}))
        known = self.deployments.specs.get(body["id"])
        try:
            spec = known if known is not None and "model" not in body else DeploymentSpec(
                kind=body.get("kind", "openai"), model=str(body["model"]),
                bedrock_stream_framing=body.get("bedrock_stream_framing", "eventstream"))
            if spec.kind not in lm_api.EXECUTABLES:
                raise ValueError(f"unknown kind {spec.kind!r}")
            self.deployments.put(body["id"], spec, str(body.get("status", "RUNNING")))
        except (KeyError, ValueError) as e:
            return self._json(request, JsonReply(400, {"error": str(e)}))
        return self._json(request, JsonReply(200, self.deployments.resource(body["id"], "")))

    # inference

    async def _inference(self, request: IRequest, deployment_id: str, rest: str) -> bytes:
        path = DEPLOYMENT_PREFIX + deployment_id + "/" + rest
        body, ok = self._read_json(request)
        query = self._record(request, path, body)

        # The gateway's JWT check comes first, then the resource group, then the deployment.
        auth_error = self._check_bearer(request, deployment_id)
        if auth_error is not None:
            return self._json(request, auth_error)
        group = request.getHeader(b"ai-resource-group")
        if group is None:
            return self._json(request, JsonReply(400, {"code": "03000", "message": "Missing header parameter "
                                                       "'AI-Resource-Group'", "target": "/", "requestId": ""}))
        spec = self.deployments.serving(deployment_id)
        if group.decode("latin-1") != self.config.resource_group or spec is None:
            return self._json(request, JsonReply(404, {"error": {
                "code": "404", "message": f"Deployment {deployment_id} not found in resource group "
                                          f"{group.decode('latin-1')}"}}))
        if not ok:
            return self._json(request, _bad_json(spec.kind))
        return await self.serve(request, deployment_id, spec, rest, body, query)

    async def serve(self, request: IRequest, deployment_id: str, spec: DeploymentSpec, rest: str, body: Any,
                    query: Mapping[str, str], render_error: Callable[[JsonReply], JsonReply] | None = None) -> bytes:
        """
        Answer an authenticated inference call for C{spec} (faults, directives, the protocol handler, the
        stream); C{render_error} rewrites every error reply (another vendor's error shape over the same
        handler).  The vendor APIs (L{sapproxy.simulator.vendors}) come in here after their own auth.
        """
        send = self._json if render_error is None else (lambda r, reply: self._json(
            r, reply if reply.status == 200 else render_error(reply)))
        text = _user_text_for(spec.kind, rest, body)
        cleaned, directive = extract_directive(text)
        armed = self.faults.take(deployment_id)
        fault, retry_after, fault_after, fault_delay = _effective_fault(directive, armed)

        if fault == "slow_headers":
            await deferLater(self.clock, fault_delay if fault_delay is not None else 1.0, lambda: None)
        elif fault == "reset_before_headers":
            return await self._abort(request)
        elif fault in ("429", "500", "503"):
            return send(request, _status_fault(spec.kind, int(fault), retry_after))

        self._seq += 1
        call = Call(deployment_id=deployment_id, spec=spec, subpath=rest, query=query, body=body,
                    user_text=cleaned, directive=directive, seq=self._seq, now=self.clock.seconds(),
                    prompt_cache=self._prompt_cache)
        try:
            reply = _handler_for(spec.kind, rest)(call)
        except Exception:
            # A simulator bug must not look like a provider's answer: say so plainly, with a 500.
            _log.failure("simulator handler failed for {path}", path=rest)
            return send(request, JsonReply(500, {"error": "simulator bug: handler raised, see the log"}))
        if isinstance(reply, JsonReply):
            if reply.status == 200 and fault in ("reset_mid_stream",):
                return await self._abort(request)
            if reply.status == 200 and fault == "stall_mid_stream":
                return await Deferred()
            if reply.status == 200 and fault == "error_mid_stream":
                return send(request, _status_fault(spec.kind, 500, retry_after))
            return send(request, reply)
        return await self._stream(request, reply, directive, fault, fault_after)

    def _check_bearer(self, request: IRequest, deployment_id: str) -> JsonReply | None:
        header = request.getHeader(b"authorization")
        if header is None:
            return JsonReply(401, b"Jwt is missing", content_type="text/plain")
        scheme, _, token = header.decode("latin-1").partition(" ")
        expiry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None:
            return JsonReply(401, b"Jwt verification fails", content_type="text/plain")
        if expiry <= self.clock.seconds():
            return JsonReply(401, b"Jwt is expired", content_type="text/plain")
        armed = self.faults.take(deployment_id, only=frozenset({"401"}))
        if armed:
            # Reject the token for good, as after a revocation, so the client must fetch a new one.
            self._tokens.pop(token.strip(), None)
            return JsonReply(401, b"Jwt is expired", content_type="text/plain")
        return None

    async def _stream(self, request: IRequest, reply: StreamReply, directive: Directive, fault: str | None,
                      fault_after: int) -> bytes:
        request.setResponseCode(200)
        request.setHeader(b"content-type", reply.content_type.encode())
        request.setHeader(b"cache-control", b"no-cache")
        for name, value in reply.headers.items():
            request.setHeader(name.encode(), value.encode())
        delay = directive.delay if directive.delay is not None else self.config.event_delay
        self.stats.open_streams += 1
        self.stats.streams_started += 1

        def closed() -> None:
            self.stats.open_streams -= 1

        def wrote(n: int) -> None:
            self.stats.events_written += 1
            self.stats.bytes_written += n

        stream = EventStream(request, self.clock, reply.events, delay=delay, fault=fault,  # type: ignore[arg-type]
                             fault_after=fault_after, error_event=reply.error_event, on_close=closed,
                             on_write=wrote)
        return await stream.start()


def _first(args: Mapping[bytes, list[bytes]], key: bytes) -> str | None:
    values = args.get(key)
    return values[0].decode("utf-8", "replace") if values else None


def _peer_certificate(request: IRequest) -> Any:
    """
    The client certificate the TLS handshake verified (an mTLS token request), or C{None}.
    """
    transport = getattr(getattr(request, "channel", None), "transport", None)
    get = getattr(transport, "getPeerCertificate", None)
    try:
        return get() if get is not None else None
    except Exception:
        return None


def _basic_auth(request: IRequest) -> tuple[str | None, str | None]:
    header = request.getHeader(b"authorization")
    if header is None or not header.lower().startswith(b"basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
    except ValueError:
        return None, None
    user, _, password = decoded.partition(":")
    return user, password


def _effective_fault(directive: Directive, armed: ArmedFault | None) -> tuple[str | None, int, int, float | None]:
    """An armed fault wins over the directive's; its own knobs default to the directive's."""
    if armed is not None:
        return (armed.fault, armed.retry_after,
                armed.fault_after if armed.fault_after is not None else directive.fault_after,
                armed.delay if armed.delay is not None else directive.delay)
    return directive.fault, directive.retry_after, directive.fault_after, directive.delay


def _status_fault(kind: str, status: int, retry_after: int) -> JsonReply:
    headers: dict[str, str] = {}
    if status in (429, 503):
        headers["Retry-After"] = str(retry_after)
    if kind == "openai":
        body = openai_api.throttle_body(retry_after) if status == 429 else openai_api.server_error_body(status)
        return JsonReply(status, body, headers=headers)
    if kind == "bedrock":
        return bedrock_api.status_error(status, headers)
    return vertex_api.status_error(status, headers)


def _bad_json(kind: str) -> JsonReply:
    if kind == "openai":
        return openai_api.azure_error(400, "We could not parse the JSON body of your request.",
                                      code="invalid_json")
    if kind == "bedrock":
        return bedrock_api.validation_error("Malformed input request, please reformat your input and try again.")
    return vertex_api.invalid_argument("Invalid JSON payload received.")


def make_simulator(config: SimulatorConfig, clock: IReactorTime) -> Simulator:
    """A simulator serving C{config}; C{clock} times token expiry, stream pacing and delays."""
    return Simulator(config, clock)
