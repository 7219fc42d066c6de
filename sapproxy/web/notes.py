"""
Response headers that tell a client what the gateway changed in its request.
"""

from __future__ import annotations

import re
from typing import Any

_UNSAFE = re.compile(r"[^\x20-\x7e]")


def announce_dropped_tools(request: Any, dropped: tuple[str, ...]) -> None:
    """
    C{x-sapproxy-dropped-tools: name (type), ...}: the client's tools the upstream cannot run and that
    were left out (see L{sapproxy.translate.tool_support}).  Names are the client's, so anything but
    printable ASCII becomes C{?} (a header value cannot hold it safely).
    """
    if dropped:
        value = _UNSAFE.sub("?", ", ".join(dropped))[:2000]
        request.responseHeaders.setRawHeaders(b"x-sapproxy-dropped-tools", [value.encode("ascii")])
