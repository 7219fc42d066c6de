"""
What one client request leaves behind: the route's record of it and the dispatcher's outcome.

The frame (L{sapproxy.web.frame}) fills a L{RequestRecord} as it learns who asked for what; the dispatcher
(L{sapproxy.dispatch.forward}) answers with an L{Outcome}, whether it delivered, failed or was hung up on; the
accounting (L{sapproxy.accounting}) turns both into one usage row, metrics and one log line.
"""

from __future__ import annotations

import time
from typing import Any

from attrs import define, field, frozen

from sapproxy.auth import ClientIdentity
from sapproxy.translate.ids import random_hex
from sapproxy.translate.usage import Usage


@frozen
class Outcome:
    """
    What the dispatcher did for one request.

    @ivar provider: the provider of the last attempt (an SAP AI Core subaccount's name).
    @ivar deployment: the deployment id of the last attempt.
    @ivar reached_upstream: an upstream answered at least once (so tokens may have been spent).
    @ivar usage: the token counts the upstream reported, if it did.
    @ivar output_chars: characters of model output the client was sent (for an estimate).
    @ivar first_byte_at: when the first byte of the answer was read (reactor seconds).
    @ivar client_hung_up: the client went away before the answer was complete.
    @ivar error_type: the kind of error the client was told about inside a stream, if any.
    @ivar drained: after a hang-up in drain mode, fires with the final outcome once the upstream has been
        read to its end (its last events carry the usage); L{None} otherwise.
    """

    provider: str = ""
    deployment: str = ""
    attempts: int = 0
    failovers: int = 0
    reached_upstream: bool = False
    usage: Usage | None = None
    output_chars: int = 0
    first_byte_at: float | None = None
    client_hung_up: bool = False
    error_type: str | None = None
    drained: Any = None


#: The outcome of a request that never reached the dispatcher (refused by the frame).
NOT_DISPATCHED = Outcome()


class Undelivered(Exception):
    """
    No upstream could answer: C{error} is for the client, C{outcome} for the usage row.
    """

    def __init__(self, error: Exception, outcome: Outcome) -> None:
        super().__init__(str(error))
        self.error = error
        self.outcome = outcome


@define
class RequestRecord:
    """
    The route's knowledge of one client request, filled in as it goes; owned by the accounting at the end.

    @ivar client: the client API's name (the usage row's C{dialect}).
    @ivar call: the client's call (L{sapproxy.interfaces.IClientCall}), for a prompt estimate when the
        upstream reports no usage.
    @ivar traceparent: the client's W3C trace context, passed upstream so a trace spans the gateway.
    @ivar span: the request's OpenTelemetry span, when tracing is on.
    @ivar outcome: the dispatcher's outcome, once there is one.
    """

    client: str
    endpoint: str
    started: float
    method: str = "POST"
    started_wall: float = field(factory=time.time)
    request_id: str = field(factory=lambda: "req_" + random_hex(24))
    user_agent: str = ""
    identity: ClientIdentity | None = None
    model_requested: str = ""
    model_resolved: str = ""
    family: str = ""
    stream: bool = False
    status: int = 0
    error_type: str | None = None
    call: Any = None
    traceparent: str | None = None
    span: Any = None
    outcome: Outcome = NOT_DISPATCHED
