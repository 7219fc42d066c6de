"""
Optional logging of request and response bodies, for debugging a client's integration; off by default.

Bodies are redacted before they reach a log line: values under secret-looking keys are replaced, and text
matching secret patterns (API keys, bearer tokens, JWTs) or the operator's own C{redact_patterns} is masked.
Long bodies are cut, so a base64 image does not flood the log.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from twisted.logger import Logger

log = Logger(namespace="sapproxy.body")

REDACTED = "[REDACTED]"
_SECRET_KEYS = {"authorization", "api_key", "apikey", "x-api-key", "password", "secret", "client_secret",
                "clientsecret", "access_token", "refresh_token", "token"}
_BUILTIN_PATTERNS = (
    r"sk-[A-Za-z0-9_\-]{8,}",
    r"(?i)bearer\s+[A-Za-z0-9._~+/\-]+=*",
    r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+",
)


class BodyLogger:
    def __init__(self, patterns: Iterable[str] = (), max_chars: int = 16384) -> None:
        self._patterns = [re.compile(p) for p in (*_BUILTIN_PATTERNS, *patterns)]
        self._max = max_chars

    def redact(self, value: Any) -> str:
        text = json.dumps(_mask_keys(value), ensure_ascii=False)
        for pattern in self._patterns:
            text = pattern.sub(REDACTED, text)
        if len(text) > self._max:
            text = text[: self._max] + f"... [{len(text) - self._max} more characters]"
        return text

    def request(self, request_id: str, endpoint: str, body: Any) -> None:
        log.info("request body {request_id} {endpoint}: {body}", request_id=request_id, endpoint=endpoint,
                 body=self.redact(body))

    def response(self, request_id: str, endpoint: str, body: Any) -> None:
        log.info("response body {request_id} {endpoint}: {body}", request_id=request_id, endpoint=endpoint,
                 body=self.redact(body))


def _mask_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and k.lower() in _SECRET_KEYS else _mask_keys(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_keys(v) for v in value]
    return value
