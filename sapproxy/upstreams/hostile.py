"""
Values from an upstream that cannot be taken as they come: a broken or hostile upstream must cost a request
at most, never the gateway.
"""

from __future__ import annotations

import math
from typing import Sequence

#: The longest C{Retry-After} honoured, in seconds; longer (and unparsable) values are ignored, and the
#: retry policy's own backoff applies.  (The policy's C{max_wait} bounds the total wait anyway.)
MAX_RETRY_AFTER = 3600.0


def retry_after_seconds(values: Sequence[bytes] | None) -> float | None:
    """
    The delay a C{Retry-After} header asks for, in seconds: a finite, non-negative number of at most
    L{MAX_RETRY_AFTER}; L{None} for anything else (C{inf}, C{nan}, C{1e400}, an HTTP date, garbage), which
    once ended a request in an HTML 500.
    """
    if not values:
        return None
    try:
        seconds = float(values[0].strip()[:32])
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_RETRY_AFTER:
        return None
    return seconds
