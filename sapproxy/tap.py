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

    from sapproxy.service import GatewayService

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
    return GatewayService(config, reactor, config_path=options["config"], reuse_port=reuse_port)


def _tune_gc(reactor: Any) -> None:
    """
    A process-wide choice, so made here and not in the library: collect young objects less often (thousands
    of streams allocate many short-lived objects; the default threshold of 700 made opening 9,000 streams
    2.5 times slower in bench/), and move what start-up allocated out of the collector's sight.
    """
    gc.set_threshold(50_000, 20, 100)
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
