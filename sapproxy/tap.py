"""
The twistd plugin's options and service: C{twistd sapproxy --config config.json}.

This module is imported lazily by the plugin file, so C{twistd --help} stays fast; the reactor is imported
only inside L{makeService}, which twistd calls after installing the reactor it was asked for.
"""

from __future__ import annotations

import gc
import socket
import sys
from typing import Any


from twisted.application.service import IService
from twisted.python import usage

from sapproxy.config import ConfigError, load_config


class Options(usage.Options):
    synopsis = "[--config config.json] [--host HOST] [--port PORT]"
    longdesc = "Serve SAP AI Core deployments as the OpenAI and Anthropic APIs."
    optParameters = [
        ["config", "c", "config.json", "Path of the gateway's JSON configuration."],
        ["host", None, None, "Interface to listen on (overrides the config's host)."],
        ["port", "p", None, "TCP port to listen on (overrides the config's port).", int],
    ]
    optFlags = [
        ["reuse-port", None, "Bind with SO_REUSEPORT, so several sapproxy processes serve one port "
                             "(the kernel spreads connections across them)."],
    ]


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    from sapproxy.memory import IdleCollector, malloc_trim
    from sapproxy.service import GatewayService
    from sapproxy.textlog import quicken_text_log

    try:
        config = load_config(options["config"], host=options["host"], port=options["port"])
    except ConfigError as e:
        # A user's mistake: one clear line and a non-zero exit, never a traceback.
        sys.stderr.write(f"sapproxy: configuration error: {e}\n")
        raise SystemExit(2)
    reuse_port = bool(options["reuse-port"])
    problem = _cannot_bind(config.host, config.port, reuse_port)
    if problem:
        # Checked here, before the reactor runs, because twistd cannot exit non-zero from startService.
        sys.stderr.write(f"sapproxy: cannot listen on {config.host}:{config.port}: {problem}\n")
        raise SystemExit(1)
    _tune_gc(reactor)
    # twistd starts its log after this function returns and before the reactor runs.
    reactor.callWhenRunning(quicken_text_log)
    service = GatewayService(config, reactor, config_path=options["config"], reuse_port=reuse_port)
    site = service.site
    collector = IdleCollector(reactor, lambda: len(site.inflight), lambda: site.finished, trim=malloc_trim())
    collector.setServiceParent(service)
    return service


#: Young objects (net allocations) between collections of the youngest generation, then how many of those
#: collections make one of the middle generation, and how many of those make a full one.
GC_THRESHOLDS = (10_000, 20, 100)


def _tune_gc(reactor: Any) -> None:
    """
    A process-wide choice, so made here and not in the library.

    A young-generation collection costs about 0.3-0.4 us per object it looks at, and frees only what reference
    counting could not: reference cycles.  A plain request now leaves none (L{sapproxy.web.routing}; Klein's own
    render and werkzeug still do, about 45 objects a request, on paths that are not fixed), so what sets how often
    the collector runs under load is CPython's count of young objects, which only goes up while requests are in
    flight: it counts allocations minus deallocations but never below zero, so the objects of requests already
    in flight at a collection are freed afterwards without being taken off the count.  With 64 requests in flight
    (about 4,000 live young objects) a first threshold of 5,000 (this module's earlier value) was crossed every
    ~100 requests, each collection finding nothing to free, 2 ms of CPU a time, about 20 us a request, 3 % (main
    thread CPU in collections, bench/plain_cost.py --turns -c 64; 10,000: one collection in 2,560 requests).
    Much higher brings back long pauses where garbage is made (50,000 once freed ~1,100 requests' garbage in
    one 17-26 ms stop).  The other two make older collections rare (Python's default of 10 and 10 made opening
    9,000 streams 2.5 times slower in bench/: full collections over every live stream;
    L{sapproxy.memory.IdleCollector} does the full collections instead, when nothing is in flight), and
    C{gc.freeze} moves what start-up allocated out of the collector's sight.
    """
    gc.set_threshold(*GC_THRESHOLDS)
    reactor.callWhenRunning(gc.freeze)


def _cannot_bind(host: str, port: int, reuse_port: bool) -> str | None:
    """
    Why the listening address cannot be bound (in use, not an address of this machine), or L{None}.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            return e.strerror or str(e)
    return None
