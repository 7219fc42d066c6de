"""
The one exception a converter raises for input it cannot convert.
"""

from __future__ import annotations


class InvalidRequest(ValueError):
    """
    A client's request body is not valid for the conversion asked of it.

    The route that called the converter turns this into a 400 in the client's own dialect, so the message
    must name what is wrong in the client's terms (C{messages[2].content[0].type}), never a Python detail.

    @ivar message: what is wrong, for a person.
    @ivar param: the JSON path of the offending field, where there is one.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class UnusableAnswer(ValueError):
    """
    The upstream answered, but with nothing a client can use (Gemini's C{MALFORMED_FUNCTION_CALL}: a tool
    call it could not write, and no content).  The dispatcher answers 502 with the message, so the client
    (or its retry logic) sees a failure rather than an empty success.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
