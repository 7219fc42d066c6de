"""
A whole Gemini response as an IR message, and the pieces the stream shares with it: stop reasons, tool
use ids, refusal details, in-stream errors.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sapproxy.translate import ir
from sapproxy.translate.errors import UnusableAnswer
from sapproxy.translate.ids import new_message_id
from sapproxy.translate.wire.gemini.signatures import mark, signed_tool_use_id
from sapproxy.translate.usage import Usage

_REFUSALS = frozenset(
    {"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT"}
)


#: Gemini finish reasons that leave no usable answer: the model failed to write a tool call.
MALFORMED = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"})


def malformed_message(finish_reason: str) -> str:
    return (f"Gemini ended its answer with {finish_reason}: it produced a tool call it could not write "
            "(arguments not matching the tool's schema, or a call of an undeclared tool); retry the request")


def stop_reason(finish_reason: Any, has_tool_use: bool) -> str:
    if finish_reason == "MAX_TOKENS":
        return "max_tokens"
    if isinstance(finish_reason, str) and finish_reason in _REFUSALS:
        return "refusal"
    return "tool_use" if has_tool_use else "end_turn"


def tool_use_id(seed: str, index: int) -> str:
    """A deterministic Anthropic-shaped tool_use id for the C{index}th call of response C{seed}."""
    digest = hashlib.sha256(f"{seed}\x00{index}".encode()).hexdigest()
    return "toolu_01" + digest[:22]


def _message_id(resp: dict[str, Any]) -> str:
    rid = resp.get("responseId")
    return "msg_" + rid if isinstance(rid, str) and rid else new_message_id()


def refusal_details(reason: str) -> dict[str, Any]:
    return {"type": "refusal", "explanation": f"Gemini blocked the request ({reason})."}


def _usage(resp: dict[str, Any]) -> Usage:
    meta = resp.get("usageMetadata")
    return Usage.from_gemini(meta if isinstance(meta, dict) else {})


def gemini_response_to_ir(resp: dict[str, Any], model: str) -> ir.Response:
    """A Gemini C{generateContent} response as an IR (Anthropic Messages) response naming C{model}."""
    message_id = _message_id(resp)
    content: list[dict[str, Any]] = []
    candidates = resp.get("candidates") or []
    candidate = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    parts = ((candidate.get("content") or {}).get("parts")) or []
    calls = 0
    for part in parts:
        if not isinstance(part, dict):
            continue
        sig = part.get("thoughtSignature")
        if part.get("thought") is True:
            text = part.get("text") if isinstance(part.get("text"), str) else ""
            if content and content[-1]["type"] == "thinking" and not content[-1]["signature"]:
                content[-1]["thinking"] += text
                content[-1]["signature"] = mark(sig) if isinstance(sig, str) else ""
            else:
                content.append({"type": "thinking", "thinking": text, "signature": mark(sig) if isinstance(sig, str) else ""})
            continue
        if isinstance(sig, str) and sig:
            if content and content[-1]["type"] == "thinking" and not content[-1]["signature"]:
                content[-1]["signature"] = mark(sig)
            else:
                content.append({"type": "thinking", "thinking": "", "signature": mark(sig)})
        call = part.get("functionCall")
        if isinstance(call, dict):
            args = call.get("args")
            content.append(
                {
                    "type": "tool_use",
                    "id": signed_tool_use_id(tool_use_id(message_id, calls), sig if isinstance(sig, str) else None),
                    "name": call.get("name") or "",
                    "input": args if isinstance(args, dict) else {},
                }
            )
            calls += 1
            continue
        text = part.get("text")
        if isinstance(text, str) and text:
            if content and content[-1]["type"] == "text":
                content[-1]["text"] += text
            else:
                content.append({"type": "text", "text": text})
    feedback = resp.get("promptFeedback") or {}
    block = feedback.get("blockReason") if isinstance(feedback, dict) else None
    finish = candidate.get("finishReason")
    if finish in MALFORMED and calls == 0:
        raise UnusableAnswer(malformed_message(finish))
    out: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "refusal" if block and not candidates else stop_reason(finish, calls > 0),
        "stop_sequence": None,
        "usage": _usage(resp).to_anthropic(),
    }
    if block and not candidates:
        out["stop_details"] = refusal_details(str(block))
    elif out["stop_reason"] == "refusal":
        out["stop_details"] = refusal_details(str(finish))
    return ir.as_response(out)


_ERROR_TYPES = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "NOT_FOUND": "not_found_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "UNAVAILABLE": "overloaded_error",
    "DEADLINE_EXCEEDED": "api_error",
    "INTERNAL": "api_error",
}


def gemini_error_event(error: dict[str, Any]) -> ir.ErrorEvent:
    """A Google API error object (C{{"code", "message", "status"}}) as an Anthropic stream C{error} event."""
    status = error.get("status")
    kind = _ERROR_TYPES.get(status, "api_error") if isinstance(status, str) else "api_error"
    if kind == "api_error" and error.get("code") == 429:
        kind = "rate_limit_error"
    return {"type": "error", "error": {"type": kind, "message": str(error.get("message") or status or "upstream error")}}
