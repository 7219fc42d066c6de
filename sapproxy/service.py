"""
The daemon: every long-lived part of the gateway, started and stopped in order.

Start: the embedded simulator (when configured), the usage store and key ring, then the listening port.
Stop (SIGTERM): stop accepting, let in-flight requests finish for up to C{drain_timeout} seconds, close what
is left (streams get an error event through their relay as their upstream closes), close the rate limiter's
Redis connection, flush the usage rows, close the upstream pool.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any, cast

import attrs
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web.server import Site

from sapproxy import __version__
from sapproxy.accounting import Accounting
from sapproxy.translate.counting import load_tokenizers
from sapproxy.auth import Authenticator
from sapproxy.bodylog import BodyLogger
from sapproxy.config import ConfigError, GatewayConfig, load_config
from sapproxy.dispatch.forward import Gateway
from sapproxy.dispatch.plan import Planner
from sapproxy.dispatch.shutdown import end_waiting
from sapproxy.errors import GatewayError
from sapproxy.metrics import GatewayMetrics
from sapproxy.models import ModelCatalog
from sapproxy.ratelimit import make_rate_limiter
from sapproxy.registry import WIRE_FORMATS, build_providers
from sapproxy.site import GatewaySite, Listener
from sapproxy.startup import announce
from sapproxy.tracing import make_tracing
from sapproxy.upstreams import ProviderContext
from sapproxy.upstreams.sap_discovery import follow_models
from sapproxy.web.admin import AdminBackend
from sapproxy.web.app import build_app
from sapproxy.translate.framing.sse import apply_stream_limits
from sapproxy.web.channel import connection_budget, raise_descriptor_limit
from sapproxy.web.frame import Services, ServicesRef
from sapproxy.web.reasons import PhrasedRequest
from sapproxy.upstreams.http import make_http_client
from sapproxy.usage import KeyRing, UsageStoreService, open_usage_store
from sapproxy.upstreams.image_fetch import ImageFetcher
from sapproxy.usage.responses import ResponseStore, ResponseStoreService
from sapproxy.usage.spool import Spool

log = Logger()


class GatewayService(MultiService):
    def __init__(self, config: GatewayConfig, reactor: Any, *, config_path: str | Path | None = None,
                 reuse_port: bool = False) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.clients = make_http_client(reactor, pool_size=config.pool_size, connect_timeout=config.timeouts.connect,
                                        environ=os.environ)
        self.pool = self.clients.pool
        self.metrics = GatewayMetrics(version=__version__)
        self.store = open_usage_store(config.usage_store, reactor=reactor,
                                      spool=Spool(config.usage_spool, config.usage_spool_max_bytes))
        self.store.on_drop = self.metrics.usage_rows_dropped
        self.keyring = KeyRing(self.store.database, reactor=reactor, threadpool=self.store.threadpool)
        self.responses = ResponseStore(self.store.database, reactor=reactor, threadpool=self.store.threadpool,
                                       ttl=config.responses_ttl_days * 86400.0)
        self.rate_limiter = make_rate_limiter(config.redis_url, reactor)
        self.config_path = Path(config_path) if config_path is not None else config.path
        self.ref = ServicesRef(self._services(config, None))
        apply_stream_limits(config)
        admin = AdminBackend(store=self.store, keyring=self.keyring, reactor=reactor)
        self.site = GatewaySite(build_app(self.ref, admin).resource(), max_body_bytes=config.max_body_bytes,
                                body_budget_bytes=config.body_budget_bytes, reactor=reactor, headers_deadline=config.timeouts.request_headers,
                                body_deadline=config.timeouts.request_body)
        self.site.metrics = self.metrics
        if config.simulator is not None:
            self._add_simulator()
        UsageStoreService(self.store, clock=reactor, retention_days=config.usage_retention_days).setServiceParent(self)
        ResponseStoreService(self.responses).setServiceParent(self)
        self.listener = Listener(reactor, config, self.site, reuse_port)
        self.listener.setServiceParent(self)

    @property
    def gateway(self) -> Gateway:
        return self.ref.current.gateway

    def _services(self, config: GatewayConfig, previous: Gateway | None) -> Services:
        context = ProviderContext(reactor=self.reactor, http=self.clients.http, config=config, metrics=self.metrics)
        providers = build_providers(config, context, dict(previous.providers) if previous is not None else None)
        gateway = Gateway(config, self.reactor, self.clients.upstream, providers=providers,
                          planner=Planner(WIRE_FORMATS), metrics=self.metrics, previous=previous,
                          tracing=previous.tracing if previous is not None else make_tracing(config.tracing))
        def served() -> list[str]:
            return [model for provider in providers.values() for model in provider.models()]

        catalog = ModelCatalog(served(), config.catalog_settings(), config.aliases, strict=config.strict_model_names)
        follow_models(providers.values(), lambda: catalog.update(served()))
        return Services(
            gateway=gateway,
            catalog=catalog,
            authenticator=Authenticator(config.secret_authentication_tokens, self.keyring),
            accounting=Accounting(self.reactor, metrics=self.metrics, store=self.store),
            rate_limiter=self.rate_limiter,
            metrics=self.metrics,
            bodies=BodyLogger(config.redact_patterns) if config.log_bodies else None,
            images=ImageFetcher(self.reactor, config.image_fetch) if config.image_fetch.enabled else None,
            responses=self.responses,
        )

    def reload(self) -> bool:
        """
        Read the config file again and serve new requests with it; requests under way finish with the old.

        A config with a mistake is refused with a clear log line and the old one stays.  Settings that need
        a restart (host, port, usage store, Redis, simulator) are reported and left as they are.
        """
        try:
            config = load_config(self.config_path)
        except ConfigError as e:
            log.error("config reload refused, the running config stays: {error}", error=str(e))
            return False
        old = self.config
        fixed = [k for k in ("host", "port", "usage_store", "usage_spool", "usage_spool_max_bytes", "redis_url", "simulator", "pool_size")
                 if getattr(config, k) != getattr(old, k)]
        if fixed:
            log.warn("config reload: {keys} need a restart to change; the running values stay", keys=", ".join(fixed))
            config = attrs.evolve(config, **{k: getattr(old, k) for k in fixed})
        previous = self.gateway
        self.ref.current = self._services(config, previous)
        previous.stop(keep=self.gateway)
        if self.running:
            self.gateway.start()
        self.config = config
        self.site.max_body_bytes = config.max_body_bytes
        self.site.body_budget.limit = config.body_budget_bytes
        self.responses.ttl = config.responses_ttl_days * 86400.0
        apply_stream_limits(config)
        self.site.headers_deadline = config.timeouts.request_headers
        self.site.body_deadline = config.timeouts.request_body
        log.info("config reloaded from {path}: {n} subaccounts, {m} models", path=str(self.config_path),
                 n=len(config.subaccounts), m=len(self.ref.current.catalog.names))
        return True

    def _add_simulator(self) -> None:
        import attrs
        from twisted.application.internet import TCPServer

        from sapproxy.simulator import default_simulator_config, make_simulator

        settings = self.config.simulator
        assert settings is not None
        simulator = make_simulator(attrs.evolve(default_simulator_config(), event_delay=settings.event_delay),
                                   self.reactor)
        site = Site(simulator.resource())
        site.requestFactory = PhrasedRequest
        site.noisy = False
        server = TCPServer(settings.port, site, interface=settings.host)
        server.setName("simulator")
        server.setServiceParent(self)
        log.info("embedded simulated SAP AI Core on http://{host}:{port}", host=settings.host, port=settings.port)

    def startService(self) -> None:
        if self.config.ignored_keys:
            log.warn("config: ignoring {keys} (keys of the original proxy that sapproxy has no use for)",
                     keys=", ".join(self.config.ignored_keys))
        proxies = {k: v for k, v in os.environ.items() if k.lower() in ("https_proxy", "http_proxy", "no_proxy")}
        if proxies:
            log.info("outbound calls honour {proxies}", proxies=", ".join(
                f"{k}={re.sub(r'//[^@/]*@', '//', v)}" for k, v in sorted(proxies.items())))
        soft, before = raise_descriptor_limit()
        if soft != before:
            log.info("open-files limit raised from {before} to {soft}", before=before, soft=soft)
        self.site.max_connections = connection_budget(soft)
        threads = getattr(self.reactor, "getThreadPool", None)
        if threads is not None:
            # The tokenizers load in a worker, not on the reactor thread at the first count (a 120-220 ms stall).
            deferToThreadPool(self.reactor, threads(), load_tokenizers).addCallbacks(
                lambda _: log.info("tokenizers loaded"),
                lambda failure: log.failure("loading the tokenizers failed", failure))
        super().startService()
        self.gateway.start()
        try:
            signal.signal(signal.SIGHUP, lambda *_: self.reactor.callFromThread(self.reload))
        except ValueError:
            pass  # not the main thread (tests); reload() is still callable
        # Accept connections only once the key store has been read (or failed to be): before that, no caller
        # could be judged, and a client would see 401s that vanish a moment later.
        self.keyring_started = self.store.start().addCallback(lambda _: self.keyring.start())
        # The store logs why it is unavailable and keeps retrying; serve meanwhile (rows wait in the spool).
        self.keyring_started.addErrback(lambda f: None)
        self.keyring_started.addCallback(lambda _: announce(self.config, self.ref.current.catalog,
                                                            self.ref.current.authenticator, self.keyring))
        self.keyring_started.addErrback(lambda f: log.failure("start-up summary failed", f))
        self.keyring_started.addBoth(lambda _: self.listener.listen())

    def stopService(self) -> Deferred[None]:
        return ensureDeferred(self._stop())

    async def _settle(self, timeout: float) -> None:
        """
        Wait until every in-flight request has finished, or C{timeout} seconds.
        """
        done = DeferredList([r.notifyFinish() for r in self.site.inflight], consumeErrors=True)
        timer = self.reactor.callLater(timeout, done.cancel)
        try:
            await done
        except Exception:
            pass
        finally:
            if timer.active():
                timer.cancel()

    async def _stop(self) -> None:
        # Stop accepting first; then give in-flight requests the drain time.
        stopped = self.listener.stopService()
        if stopped is not None:
            await stopped
        if self.site.inflight:
            log.info("draining {n} in-flight requests for up to {t} s", n=len(self.site.inflight),
                     t=self.config.drain_timeout)
            await self._settle(self.config.drain_timeout)
        if self.site.inflight:
            log.warn("drain timeout: ending {n} requests still open", n=len(self.site.inflight))
            # Streams end with an error event in their dialect; each request then finishes and is accounted.
            ending = GatewayError("overloaded", "the gateway is shutting down; retry the request")
            self.gateway.end_streams(ending)
            # Requests still waiting for an upstream's headers get a 503 in their dialect, not a reset.
            if end_waiting(self.site.inflight, self.gateway.waiting, ending):
                await self._settle(2.0)
            for request in list(self.site.inflight):
                if not request.startedWriting and request.channel is not None:
                    cast(Any, request.channel).transport.abortConnection()
            await self._settle(2.0)
        self.keyring.stop()
        self.gateway.stop()
        await self.rate_limiter.disconnect()
        await MultiService.stopService(self)
        await self.pool.closeCachedConnections()
