"""
C{python -m sapproxy.healthcheck [--config PATH]}: exit 0 when the gateway that config describes answers
C{GET /health} with 200, else 1 with one line saying why.  The container image's C{HEALTHCHECK}; it reads the
same config as the gateway, so a changed port needs no second edit.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Sequence

from sapproxy.config import ConfigError, load_config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sapproxy.healthcheck")
    parser.add_argument("--config", default="/etc/sapproxy/config.json")
    parser.add_argument("--port", type=int, help="the port, when the gateway was started with --port")
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"unhealthy: {e}", file=sys.stderr)
        return 1
    host = "127.0.0.1" if config.host in ("0.0.0.0", "", "::") else config.host
    url = f"http://{host if ':' not in host else '[' + host + ']'}:{args.port or config.port}/health"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as reply:
            status = json.loads(reply.read()).get("status")
    except (OSError, ValueError) as e:
        print(f"unhealthy: {url}: {e}", file=sys.stderr)
        return 1
    if status != "ok":
        print(f"unhealthy: {url} says {status!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
