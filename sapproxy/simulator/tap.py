"""
The C{sapproxy-simulator} twistd plugin's options and service: a simulated AI Core on one TCP port.

The reactor is imported inside L{makeService} only, so importing this module (as twistd's plugin scan does)
never installs a reactor.
"""

from __future__ import annotations

import attrs
from twisted.application.internet import TCPServer
from twisted.application.service import IService
from twisted.python import usage
from twisted.web.server import Site

from sapproxy.web.reasons import PhrasedRequest

from .config import SimulatorConfig, default_simulator_config, load_config


class Options(usage.Options):
    """C{twistd -n sapproxy-simulator --port 3099 [--config sim.json] [--event-delay 0.01]}."""

    optParameters = [
        ["port", "p", 3099, "TCP port to listen on.", int],
        ["host", None, "127.0.0.1", "Interface to listen on."],
        ["config", "c", None, "JSON file of SimulatorConfig fields (deployments, credentials, ...)."],
        ["event-delay", None, None, "Seconds between stream events (overrides the config).", float],
    ]


def build_config(options: Options) -> SimulatorConfig:
    """The config the options describe: the file (or the default config), then the command-line overrides."""
    config = load_config(options["config"]) if options["config"] else default_simulator_config()
    if options["event-delay"] is not None:
        config = attrs.evolve(config, event_delay=float(options["event-delay"]))
    return config


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    from .app import make_simulator

    simulator = make_simulator(build_config(options), reactor)  # type: ignore[arg-type]
    site = Site(simulator.resource())
    site.requestFactory = PhrasedRequest
    site.displayTracebacks = False
    service = TCPServer(int(options["port"]), site, interface=options["host"])
    service.setName("sapproxy-simulator")
    return service
