"""
The Twisted interfaces the gateway is typed by: the reactor it runs on and the requests it answers.

Each is an intersection of Twisted's own interfaces (as treq and Synapse type their reactors), naming only what
the gateway uses, so a test can pass L{twisted.internet.testing.MemoryReactorClock} or a fake request that
provides exactly that.
"""

from __future__ import annotations

from zope.interface import Attribute

from twisted.internet.interfaces import (
    IConsumer, IReactorCore, IReactorFromThreads, IReactorPluggableNameResolver, IReactorTCP, IReactorThreads,
    IReactorTime,
)
from twisted.web.iweb import IRequest


class IGatewayReactor(IReactorCore, IReactorTime, IReactorTCP, IReactorThreads, IReactorFromThreads,
                      IReactorPluggableNameResolver):
    """
    The reactor: timers, TCP listening and connecting, the thread pool (usage store, boto3), calls from
    threads (signals), start-up hooks, and name resolution (upstream hosts).
    """


class IGatewayRequest(IRequest, IConsumer):
    """
    A request the gateway answers: read as an L{IRequest}, written to as an L{IConsumer} (a stream registers
    its relay as the producer, so the client's pace reaches the upstream).
    """

    startedWriting = Attribute("Whether the response's headers have gone out (an error can no longer be a body).")

    def notifyFinish() -> object:
        """
        A Deferred that fires when the response is finished, or fails when the connection is lost first.
        """
