"""
The twistd plugin's options and service: C{twistd sapproxy --config config.json}.

This module is imported lazily by the plugin file, so C{twistd --help} stays fast; the reactor is imported
only inside L{makeService}, which twistd calls after installing the reactor it was asked for.
"""

from __future__ import annotations

import sys


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


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    from sapproxy.service import GatewayService

    try:
        config = load_config(options["config"], host=options["host"], port=options["port"])
    except ConfigError as e:
        # A user's mistake: one clear line and a non-zero exit, never a traceback.
        sys.stderr.write(f"sapproxy: configuration error: {e}\n")
        raise SystemExit(2)
    return GatewayService(config, reactor, config_path=options["config"])
