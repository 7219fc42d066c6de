"""
A reason phrase for every status line: twisted.web knows no phrase for 429, 422 and a few more (it sends
C{429 Unknown Status}), and upstream statuses relayed as they are (Anthropic's 529) need one too.
"""

from __future__ import annotations

import http
from typing import Any

from twisted.web.http import RESPONSES
from twisted.web.server import Request

#: Statuses in use by LLM providers that the IANA registry does not name.
_EXTRA = {499: b"Client Closed Request", 529: b"Overloaded"}


def reason_phrase(status: int) -> bytes:
    """
    The standard reason phrase for C{status}; for a status with none, its class's name.
    """
    known = RESPONSES.get(status)  # bound once: twisted.web.http is a deprecation proxy, slow per attribute
    if known:
        return known
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        pass
    if status in _EXTRA:
        return _EXTRA[status]
    return {1: b"Informational", 2: b"Success", 3: b"Redirection", 4: b"Client Error"}.get(status // 100,
                                                                                           b"Server Error")


class PhrasedRequest(Request):
    """
    A request whose status line always carries a reason phrase.
    """

    def setResponseCode(self, code: int, message: Any = None) -> None:
        super().setResponseCode(code, message if message is not None else reason_phrase(code))
