# Measurement only (bench/plain_cost.py --turns / --cprofile): counts, in the gateway process, the reactor turns
# (doIteration calls), callLater calls and Deferreds created between SIGUSR2 (sent after the warm-up requests)
# and exit, and writes them as JSON to $SAPPROXY_TURNS_OUT; or, with $SAPPROXY_CPROFILE_OUT, runs cProfile over
# the same span.  Not a gateway change: nothing here is imported unless the bench puts this folder on PYTHONPATH.
import json
import os
import signal

_out = os.environ.get("SAPPROXY_TURNS_OUT")
_prof_out = os.environ.get("SAPPROXY_CPROFILE_OUT")
_counts = {"turns": 0, "callLater": 0, "deferreds": 0, "busy_turns": 0}
_on = [False]

if _out:
    from twisted.internet import base, defer, epollreactor

    _doIteration = epollreactor.EPollReactor.doIteration
    _callLater = base.ReactorBase.callLater
    _dinit = defer.Deferred.__init__

    def doIteration(self, timeout):
        if _on[0]:
            _counts["turns"] += 1
            if timeout == 0:
                _counts["busy_turns"] += 1
        return _doIteration(self, timeout)

    def callLater(self, *a, **kw):
        if _on[0]:
            _counts["callLater"] += 1
        return _callLater(self, *a, **kw)

    def dinit(self, *a, **kw):
        if _on[0]:
            _counts["deferreds"] += 1
        return _dinit(self, *a, **kw)

    epollreactor.EPollReactor.doIteration = doIteration
    base.ReactorBase.callLater = callLater
    defer.Deferred.__init__ = dinit

    def _toggle(signum, frame):
        if not _on[0]:
            for k in _counts:
                _counts[k] = 0
            _on[0] = True
            return
        _on[0] = False
        with open(_out, "w") as f:
            json.dump(_counts, f)

    signal.signal(signal.SIGUSR2, _toggle)

if _prof_out:
    import cProfile

    _prof = cProfile.Profile()

    _prof_on = [False]

    def _toggle_prof(signum, frame):
        if not _prof_on[0]:
            _prof_on[0] = True
            _prof.enable()
            return
        _prof.disable()
        _prof.dump_stats(_prof_out)

    signal.signal(signal.SIGUSR2, _toggle_prof)
