"""
Builders for Anthropic stream events that several converters emit the same way.
"""

from __future__ import annotations

from typing import Any


def message_start(message_id: str, model: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    The opening event of a stream: an empty assistant message, with the usage known so far.
    """
    return {
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage if usage is not None else {"input_tokens": 0, "output_tokens": 0},
        },
    }
