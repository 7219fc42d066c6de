# Measurement only (bench/plain_cost.py --turns / --cprofile): counts, in the gateway process, the reactor turns
# (doIteration calls), callLater calls, Deferreds created and garbage collections (per generation, objects freed,
# the main thread's CPU time in them: gc_us; and in all: cpu_us) between SIGUSR2 (sent after the warm-up
# requests) and the next SIGUSR2, and writes them as JSON to $SAPPROXY_TURNS_OUT ($SAPPROXY_GC_LOG: one line per
# collection); or, with $SAPPROXY_CPROFILE_OUT, runs cProfile over the same span; or, with
# $SAPPROXY_GARBAGE_OUT, lists what the cyclic collector found over the span (types, counted) and which live
# objects grew.  Not a gateway change: nothing here is imported unless the bench puts this folder on PYTHONPATH.
import json
import os
import signal

_out = os.environ.get("SAPPROXY_TURNS_OUT")
_prof_out = os.environ.get("SAPPROXY_CPROFILE_OUT")
_counts = {"turns": 0, "callLater": 0, "deferreds": 0, "busy_turns": 0, "gc0": 0, "gc1": 0, "gc2": 0,
           "gc_collected": 0, "gc_us": 0, "cpu_us": 0}
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

    import gc
    import time

    _gc_started = [0.0]
    _cpu_started = [0.0]
    _gc_log = os.environ.get("SAPPROXY_GC_LOG")

    def _gc_callback(phase, info):
        # Collections per generation, objects they freed, and their wall-clock time (a hint, not a measure).
        if not _on[0]:
            return
        if phase == "start":
            _gc_started[0] = time.thread_time()
            return
        _counts["gc%d" % info["generation"]] += 1
        _counts["gc_collected"] += info["collected"]
        _counts["gc_us"] += round((time.thread_time() - _gc_started[0]) * 1e6)
        if _gc_log:
            with open(_gc_log, "a") as f:
                f.write("%d %d %d %s\n" % (info["generation"], info["collected"],
                                            round((time.thread_time() - _gc_started[0]) * 1e6), gc.get_count()))

    gc.callbacks.append(_gc_callback)
    epollreactor.EPollReactor.doIteration = doIteration
    base.ReactorBase.callLater = callLater
    defer.Deferred.__init__ = dinit

    def _toggle(signum, frame):
        if not _on[0]:
            for k in _counts:
                _counts[k] = 0
            _on[0] = True
            _cpu_started[0] = time.thread_time()
            return
        _counts["cpu_us"] = round((time.thread_time() - _cpu_started[0]) * 1e6)
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

_garbage_out = os.environ.get("SAPPROXY_GARBAGE_OUT")

if _garbage_out:
    # What the requests between the two signals leave for the cyclic collector: its types, counted.
    import collections
    import gc

    _garbage_on = [False]
    _before = [None]

    def _census():
        return collections.Counter(type(o).__module__ + "." + type(o).__qualname__ for o in gc.get_objects())

    def _toggle_garbage(signum, frame):
        if not _garbage_on[0]:
            _garbage_on[0] = True
            gc.collect()
            _before[0] = _census()
            gc.set_debug(gc.DEBUG_SAVEALL)
            return
        gc.collect()
        gc.set_debug(0)
        kinds = collections.Counter(type(o).__module__ + "." + type(o).__qualname__ for o in gc.garbage)
        with open(_garbage_out, "w") as f:
            f.write("%d objects\n" % len(gc.garbage))
            for kind, n in kinds.most_common():
                f.write("%7d %s\n" % (n, kind))
            for o in gc.garbage:
                if type(o).__name__ in ("function", "method", "cell"):
                    f.write("%r\n" % (o,))
        gc.garbage.clear()
        grown = _census()
        grown.subtract(_before[0])
        with open(_garbage_out, "a") as f:
            f.write("live objects grown (after a full collection):\n")
            for kind, n in grown.most_common(30):
                if n > 0:
                    f.write("%7d %s\n" % (n, kind))

    signal.signal(signal.SIGUSR2, _toggle_garbage)
