"""
Bedrock's InvokeModel and InvokeModelWithResponseStream for Anthropic models (C{kind=bedrock}), as AI Core
serves them at C{/invoke} and C{/invoke-with-response-stream}; C{/converse*} lives in L{converse_api}.

Streams are Anthropic's events, either in binary event-stream frames (Bedrock's own framing, each event
base64'd into C{{"bytes": ...}}) or as Anthropic-style SSE, per deployment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from . import anthropic_body, converse_api, model_rules
from .call import Call
from .eventstream import chunk_frame, exception_frame
from .plan import Plan, make_plan
from .replies import JsonReply, Reply, StreamReply
from .textgen import count_prompt_tokens, json_fragments, stable_id

ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
#: AI Core model names to the Anthropic model ids Bedrock reports.
MODEL_IDS = {
    "anthropic--claude-4.5-sonnet": "claude-sonnet-4-5-20250929",
    "anthropic--claude-4-sonnet": "claude-sonnet-4-20250514",
    "anthropic--claude-4.1-opus": "claude-opus-4-1-20250805",
    "anthropic--claude-4-opus": "claude-opus-4-20250514",
    "anthropic--claude-4.5-haiku": "claude-haiku-4-5-20251001",
    "anthropic--claude-3.7-sonnet": "claude-3-7-sonnet-20250219",
}



def user_text(body: Any) -> str:
    return anthropic_body.user_text(body)


def validation_error(message: str) -> JsonReply:
    """Bedrock's ValidationException: 400, C{{"message": ...}} and the C{x-amzn-ErrorType} header."""
    return JsonReply(400, {"message": message}, headers={"x-amzn-ErrorType": "ValidationException" + ERROR_TYPE_SUFFIX})


def status_error(status: int, headers: Mapping[str, str]) -> JsonReply:
    kinds = {
        429: ("ThrottlingException", "Too many requests, please wait before trying again."),
        500: ("InternalServerException", "The system encountered an unexpected error during processing. "
                                         "Try your request again."),
        503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
    }
    kind, message = kinds.get(status, kinds[500])
    return JsonReply(status, {"message": message},
                     headers={**headers, "x-amzn-ErrorType": kind + ERROR_TYPE_SUFFIX})


def handle(call: Call) -> Reply:
    if call.subpath == "invoke":
        return invoke(call, stream=False)
    if call.subpath == "invoke-with-response-stream":
        return invoke(call, stream=True)
    if call.subpath in ("converse", "converse-stream"):
        return converse_api.handle(call)
    return JsonReply(404, {"message": "Not Found"},
                     headers={"x-amzn-ErrorType": "UnknownOperationException" + ERROR_TYPE_SUFFIX})


def model_id(model: str) -> str:
    return MODEL_IDS.get(model, model.replace("anthropic--", ""))


def _usage(call: Call, plan: Plan) -> dict[str, Any]:
    body = call.body
    total = count_prompt_tokens({"system": body.get("system"), "messages": body.get("messages"),
                                 "tools": body.get("tools")})
    creation = read = 0
    if anthropic_body.has_cache_control(body):
        prefix = {"system": body.get("system"), "tools": body.get("tools"), "messages": body["messages"][:-1]}
        key = hashlib.sha256(json.dumps(prefix, sort_keys=True).encode()).hexdigest()
        cached = min(total, count_prompt_tokens(prefix))
        if key in call.prompt_cache:
            read = cached
        else:
            call.prompt_cache.add(key)
            creation = cached
    return {"input_tokens": max(1, total - creation - read), "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read, "output_tokens": plan.output_tokens}


def _plan(call: Call) -> Plan:
    body = call.body
    tools, forced = anthropic_body.offered_tools(body)
    thinking = isinstance(body.get("thinking"), Mapping) and body["thinking"].get("type") == "enabled"
    return make_plan(call.user_text, call.directive, thinking=thinking, tools=tools, forced_tool=forced,
                     tool_result=anthropic_body.tool_result(body), stop_sequences=body.get("stop_sequences") or ())


def invoke(call: Call, *, stream: bool) -> Reply:
    error = anthropic_body.schema_errors(call.body)
    if error is not None:
        return validation_error(error)
    error = anthropic_body.model_errors(call.body) or model_rules.claude_errors(call.body, model_id(call.spec.model))
    if error is not None:
        return validation_error("The model returned the following errors: " + error)
    plan = _plan(call)
    usage = _usage(call, plan)
    msg_id = stable_id("msg_bdrk_", f"{call.seq}:{call.deployment_id}", 24)
    model = model_id(call.spec.model)
    if not stream:
        content: list[dict[str, Any]] = []
        for block in plan.blocks:
            if block.kind == "thinking":
                content.append({"type": "thinking", "thinking": block.text, "signature": block.signature})
            elif block.kind == "tool":
                content.append({"type": "tool_use", "id": _tool_id(call, block.tool_index), "name": block.tool_name,
                                "input": json.loads(block.tool_args)})
            else:
                content.append({"type": "text", "text": block.full_text()})
        body = {"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": plan.stop, "stop_sequence": plan.stop_sequence, "usage": usage}
        headers = {"x-amzn-bedrock-input-token-count": str(usage["input_tokens"]),
                   "x-amzn-bedrock-output-token-count": str(usage["output_tokens"]),
                   "x-amzn-bedrock-invocation-latency": "1200"}
        if call.directive.no_usage:
            del body["usage"]
        return JsonReply(200, body, headers=headers)

    events = anthropic_events(call, plan, usage, msg_id, model)
    if call.spec.bedrock_stream_framing == "sse":
        return StreamReply("text/event-stream; charset=utf-8", (_sse(e) for e in events), _sse_error)
    return StreamReply("application/vnd.amazon.eventstream", (chunk_frame(e) for e in events),
                       lambda: exception_frame("modelStreamErrorException", "Model Stream Error"),
                       headers={"x-amzn-bedrock-content-type": "application/json"})


def _tool_id(call: Call, index: int) -> str:
    return stable_id("toolu_bdrk_", f"{call.seq}:{index}", 24)


def anthropic_events(call: Call, plan: Plan, usage: Mapping[str, Any], msg_id: str,
                     model: str) -> Iterator[dict[str, Any]]:
    """The Anthropic stream events of C{plan}, generated lazily; Bedrock adds invocation metrics at the end."""
    start_usage = {k: v for k, v in usage.items() if k != "output_tokens"}
    start_usage["output_tokens"] = 1
    yield {"type": "message_start", "message": {
        "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": start_usage}}
    pinged = False
    for index, block in enumerate(plan.blocks):
        if block.kind == "thinking":
            yield {"type": "content_block_start", "index": index,
                   "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
        elif block.kind == "tool":
            yield {"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": _tool_id(call, block.tool_index), "name": block.tool_name, "input": {}}}
        else:
            yield {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
        if not pinged:
            pinged = True
            yield {"type": "ping"}
        if block.kind == "thinking":
            for word in _words(block.text):
                yield {"type": "content_block_delta", "index": index,
                       "delta": {"type": "thinking_delta", "thinking": word}}
            yield {"type": "content_block_delta", "index": index,
                   "delta": {"type": "signature_delta", "signature": block.signature}}
        elif block.kind == "tool":
            for fragment in [""] + json_fragments(block.tool_args):
                yield {"type": "content_block_delta", "index": index,
                       "delta": {"type": "input_json_delta", "partial_json": fragment}}
        else:
            for piece in block.pieces():
                yield {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}
        yield {"type": "content_block_stop", "index": index}
    delta_usage: dict[str, Any] = {"output_tokens": usage["output_tokens"]}
    message_delta: dict[str, Any] = {"type": "message_delta",
                                     "delta": {"stop_reason": plan.stop, "stop_sequence": plan.stop_sequence}}
    if not call.directive.no_usage:
        message_delta["usage"] = delta_usage
    yield message_delta
    yield {"type": "message_stop", "amazon-bedrock-invocationMetrics": {
        "inputTokenCount": usage["input_tokens"], "outputTokenCount": usage["output_tokens"],
        "invocationLatency": 1200, "firstByteLatency": 300}}


def _words(text: str) -> list[str]:
    """Split thinking text into word deltas that join back to it exactly."""
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _sse(event: Mapping[str, Any]) -> bytes:
    name = str(event["type"])
    if name == "ping":
        data = '{"type": "ping"}'  # Anthropic's API writes this one event with a space
    else:
        data = json.dumps(event, separators=(",", ":"))
    return f"event: {name}\ndata: {data}\n\n".encode()


def _sse_error() -> bytes:
    return b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
