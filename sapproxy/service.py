"""
The daemon: every long-lived part of the gateway, started and stopped in order.

Start: the embedded simulator (when configured), the usage store and key ring, then the listening port.
Stop (SIGTERM): stop accepting, let in-flight requests finish for up to C{drain_timeout} seconds, close what
is left (streams get an error event through their relay as their upstream closes), flush the usage rows,
close the upstream pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.logger import Logger
from twisted.web.server import Request, Site

from sapproxy import __version__
from sapproxy.accounting import Accounting
from sapproxy.app import build_app
from sapproxy.auth import Authenticator
from sapproxy.config import GatewayConfig
from sapproxy.errors import GatewayError
from sapproxy.exchanges import ExchangeBuilder
from sapproxy.gateway import Gateway
from sapproxy.metrics import GatewayMetrics
from sapproxy.models import ModelCatalog
from sapproxy.ratelimit import make_rate_limiter
from sapproxy.resources._scaffold import Services
from sapproxy.upstream import make_http_client

log = Logger()


class TrackingRequest(Request):
    """
    A request the site remembers until it finishes, so shutdown can wait for it.
    """

    def process(self) -> None:
        site = self.channel.site
        site.inflight.add(self)
        self.notifyFinish().addBoth(lambda _: site.inflight.discard(self))
        super().process()


class GatewaySite(Site):
    requestFactory = TrackingRequest
    displayTracebacks = False

    def __init__(self, resource: Any, **kwargs: Any) -> None:
        super().__init__(resource, **kwargs)
        self.inflight: set[Request] = set()
        self.noisy = False


class _Listener(Service):
    def __init__(self, reactor: Any, config: GatewayConfig, site: GatewaySite) -> None:
        self._reactor = reactor
        self._config = config
        self._site = site
        self.port: Any = None

    def startService(self) -> None:
        super().startService()
        self.port = self._reactor.listenTCP(self._config.port, self._site, backlog=1024, interface=self._config.host)
        address = self.port.getHost()
        log.info("sapproxy {version} listening on http://{host}:{port}", version=__version__, host=address.host,
                 port=address.port)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self.port is None:
            return None
        d = self.port.stopListening()
        self.port = None
        return d


class GatewayService(MultiService):
    def __init__(self, config: GatewayConfig, reactor: Any, *, config_path: str | Path | None = None) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.http, self.pool = make_http_client(reactor, pool_size=config.pool_size,
                                                connect_timeout=config.timeouts.connect)
        self.metrics = GatewayMetrics(version=__version__)
        self.gateway = Gateway(config, reactor, self.http, metrics=self.metrics)
        self.store: Any = None
        self.keyring: Any = None
        from sapproxy.usage import KeyRing, UsageStoreService, open_usage_store

        self.store = open_usage_store(config.usage_store, reactor=reactor)
        self.store.on_drop = self.metrics.usage_rows_dropped
        self.keyring = KeyRing(self.store.database, reactor=reactor, threadpool=self.store.threadpool)
        self.rate_limiter = make_rate_limiter(config.redis_url, reactor)
        configured = [m for account in config.subaccounts.values() for m in account.deployment_models]
        services = Services(
            gateway=self.gateway,
            catalog=ModelCatalog(configured, config.models, config.aliases),
            authenticator=Authenticator(config.secret_authentication_tokens, self.keyring),
            accounting=Accounting(reactor, metrics=self.metrics, store=self.store),
            builder=ExchangeBuilder(config),
            rate_limiter=self.rate_limiter,
            metrics=self.metrics,
        )
        self.site = GatewaySite(build_app(services).resource())
        if config.simulator is not None:
            self._add_simulator()
        UsageStoreService(self.store, clock=reactor, retention_days=config.usage_retention_days).setServiceParent(self)
        self.listener = _Listener(reactor, config, self.site)
        self.listener.setServiceParent(self)

    def _add_simulator(self) -> None:
        import attrs
        from twisted.application.internet import TCPServer

        from sapproxy.simulator import default_simulator_config, make_simulator

        settings = self.config.simulator
        assert settings is not None
        simulator = make_simulator(attrs.evolve(default_simulator_config(), event_delay=settings.event_delay),
                                   self.reactor)
        site = Site(simulator.resource())
        site.noisy = False
        server = TCPServer(settings.port, site, interface=settings.host)
        server.setName("simulator")
        server.setServiceParent(self)
        log.info("embedded simulated SAP AI Core on http://{host}:{port}", host=settings.host, port=settings.port)

    def startService(self) -> None:
        if not self.config.secret_authentication_tokens:
            log.warn("*** secret_authentication_tokens is empty: AUTHENTICATION IS DISABLED until a key is created "
                     "with sapproxy-admin keys create; anyone who can reach this port can use it ***")
        super().startService()
        self.keyring_started = self.store.start().addCallback(lambda _: self.keyring.start())

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
        await self.listener.stopService()
        if self.site.inflight:
            log.info("draining {n} in-flight requests for up to {t} s", n=len(self.site.inflight),
                     t=self.config.drain_timeout)
            await self._settle(self.config.drain_timeout)
        if self.site.inflight:
            log.warn("drain timeout: ending {n} requests still open", n=len(self.site.inflight))
            # Streams end with an error event in their dialect; each request then finishes and is accounted.
            self.gateway.end_streams(GatewayError("overloaded", "the gateway is shutting down; retry the request"))
            for request in list(self.site.inflight):
                if not request.startedWriting and request.channel is not None:
                    request.channel.transport.abortConnection()
            await self._settle(2.0)
        self.keyring.stop()
        self.gateway.stop()
        await MultiService.stopService(self)
        await self.pool.closeCachedConnections()
