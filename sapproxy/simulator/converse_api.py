"""
Bedrock's Converse and ConverseStream (C{/converse}, C{/converse-stream}) for C{kind=bedrock} deployments.

ConverseStream events are sent as SSE C{data:} lines, one decoded event each (C{{"messageStart": ...}}), as
AI Core relays them; with the C{python_literals} directive they are printed as Python dict literals
(C{{'messageStart': {'role': 'assistant'}}}), which SAP's gateway is known to emit for some events.  A
deployment with C{converse_stream_framing="eventstream"} (Bedrock's own runtime) sends them as AWS event-stream
frames instead, C{:event-type} naming the event and its JSON body (padded with C{"p"}) the payload.
Unlike the Anthropic stream, text and reasoning blocks have no C{contentBlockStart}; only tool use does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from . import model_rules
from .call import Call
from .eventstream import converse_frame, exception_frame
from .plan import Plan, ToolSpec, make_plan
from .replies import JsonReply, Reply, StreamReply
from .shape import ANY, NUMBER, check
from .textgen import count_prompt_tokens, json_fragments, stable_id

ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
REQUEST_KEYS = frozenset({
    "messages", "system", "inferenceConfig", "toolConfig", "additionalModelRequestFields",
    "additionalModelResponseFieldPaths", "guardrailConfig", "promptVariables", "requestMetadata",
    "performanceConfig",
})
BLOCK_KEYS = frozenset({"text", "image", "document", "video", "toolUse", "toolResult", "guardContent",
                        "reasoningContent", "cachePoint", "citationsContent"})
INFERENCE_KEYS = frozenset({"maxTokens", "temperature", "topP", "stopSequences"})
_BLOCK = {
    "text": str, "toolUse": {"toolUseId": str, "name": str, "input": ANY},
    "toolResult": {"toolUseId": str, "content": [{"text": str, "json": ANY}], "status": str},
    "image": dict, "document": dict, "video": dict, "reasoningContent": dict, "cachePoint": dict,
    "guardContent": dict, "citationsContent": dict,
}
#: The JSON types of the fields the simulator reads.
BODY_SPEC = {
    "messages": [{"role": str, "content": [_BLOCK]}], "system": [{"text": str, "cachePoint": dict}],
    "inferenceConfig": {"maxTokens": int, "temperature": NUMBER, "topP": NUMBER, "stopSequences": [str]},
    "toolConfig": {"tools": [{"toolSpec": {"name": str, "description": str, "inputSchema": {"json": dict}},
                              "cachePoint": dict}],
                   "toolChoice": {"auto": dict, "any": dict, "tool": {"name": str}}},
    "additionalModelRequestFields": {"thinking": {"type": str, "budget_tokens": int}},
}


def _validation(message: str) -> JsonReply:
    return JsonReply(400, {"message": message},
                     headers={"x-amzn-ErrorType": "ValidationException" + ERROR_TYPE_SUFFIX})


def user_text(body: Any) -> str:
    if not isinstance(body, Mapping) or not isinstance(body.get("messages"), list):
        return ""
    for message in reversed(body["messages"]):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            return "".join(b["text"] for b in (content if isinstance(content, list) else [])
                           if isinstance(b, Mapping) and isinstance(b.get("text"), str))
    return ""


def validate(body: Any) -> JsonReply | None:
    if not isinstance(body, Mapping):
        return _validation("Malformed input request, please reformat your input and try again.")
    for key in body:
        if key not in REQUEST_KEYS:
            return _validation(f"Malformed input request: extraneous key [{key}] is not permitted, please "
                               "reformat your input and try again.")
    mismatch = check(body, BODY_SPEC)
    if mismatch is not None:
        path, expected = mismatch
        pointer = "#/" + path.replace("[", "/").replace("]", "").replace(".", "/")
        return _validation(f"Malformed input request: {pointer}: expected type: {expected}, please reformat "
                           "your input and try again.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _validation("A conversation must start with a user message. Try again with a conversation that "
                           "starts with a user message.")
    previous = None
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        if i == 0 and role != "user":
            return _validation("A conversation must start with a user message. Try again with a conversation "
                               "that starts with a user message.")
        if role not in ("user", "assistant"):
            return _validation(f"1 validation error detected: Value '{role}' at 'messages.{i + 1}.member.role' "
                               "failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]")
        if role == previous:
            return _validation("A conversation must alternate between user and assistant roles. Make sure the "
                               "conversation alternates between user and assistant roles and try again.")
        previous = role
        content = message.get("content")
        if not isinstance(content, list) or not content:
            return _validation(f"The content field in the Message object at messages.{i} is empty. Add a "
                               "ContentBlock object to the content field and try again.")
        for j, block in enumerate(content):
            if not isinstance(block, Mapping) or len(block) != 1 or next(iter(block)) not in BLOCK_KEYS:
                return _validation(f"Malformed input request: #/messages/{i}/content/{j}: extraneous key "
                                   f"[{next(iter(block), '')}] is not permitted, please reformat your input and "
                                   "try again.")
            if "text" in block and not str(block["text"]).strip():
                return _validation(f"The text field in the ContentBlock object at messages.{i}.content.{j} is "
                                   "blank. Add text to the text field, and try again.")
    for j, block in enumerate(body.get("system") or []):
        if isinstance(block, Mapping) and "text" in block and not str(block["text"]).strip():
            return _validation(f"The text field in the SystemContentBlock object at system.{j} is blank. Add text "
                               "to the text field, and try again.")
    inference = body.get("inferenceConfig") or {}
    for key in inference:
        if key not in INFERENCE_KEYS:
            return _validation(f"Malformed input request: extraneous key [{key}] is not permitted, please "
                               "reformat your input and try again.")
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
    if isinstance(thinking, Mapping) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens", 0)
        if isinstance(inference.get("maxTokens"), int) and budget >= inference["maxTokens"]:
            return _validation("The model returned the following errors: `max_tokens` must be greater than "
                               "`thinking.budget_tokens`. Please consult our documentation at "
                               "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
                               "#max-tokens-and-context-window-size")
    return None


def _tools(body: Mapping[str, Any]) -> tuple[list[ToolSpec], str | None]:
    config = body.get("toolConfig") or {}
    specs = []
    for tool in config.get("tools") or []:
        spec = tool.get("toolSpec") if isinstance(tool, Mapping) else None
        if isinstance(spec, Mapping) and spec.get("name"):
            specs.append(ToolSpec(spec["name"], (spec.get("inputSchema") or {}).get("json", {})))
    choice = config.get("toolChoice") or {}
    forced = choice.get("tool", {}).get("name") if isinstance(choice.get("tool"), Mapping) else None
    return specs, forced


def _tool_result(body: Mapping[str, Any]) -> str | None:
    last = body["messages"][-1]
    results = [b["toolResult"] for b in last.get("content", []) if isinstance(b, Mapping) and "toolResult" in b]
    if not results:
        return None
    out: list[str] = []
    for result in results:
        for item in result.get("content") or []:
            if "text" in item:
                out.append(str(item["text"]))
            elif "json" in item:
                out.append(json.dumps(item["json"], separators=(",", ":")))
    return " ".join(out)


def _plan(call: Call) -> Plan:
    body = call.body
    tools, forced = _tools(body)
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
    enabled = isinstance(thinking, Mapping) and thinking.get("type") == "enabled"
    return make_plan(call.user_text, call.directive, thinking=enabled, tools=tools, forced_tool=forced,
                     tool_result=_tool_result(body),
                     stop_sequences=(body.get("inferenceConfig") or {}).get("stopSequences") or ())


def _tool_id(call: Call, index: int) -> str:
    return stable_id("tooluse_", f"{call.seq}:{index}", 22)


def handle(call: Call) -> Reply:
    error = validate(call.body)
    if error is not None:
        return error
    from .bedrock_api import model_id
    message = model_rules.converse_errors(call.body, model_id(call.spec.model))
    if message is not None:
        return _validation(message)
    plan = _plan(call)
    body = call.body
    wants_stop_sequence = "/stop_sequence" in (body.get("additionalModelResponseFieldPaths") or ())
    prompt = count_prompt_tokens({"s": body.get("system"), "m": body.get("messages")})
    usage = {"inputTokens": prompt, "outputTokens": plan.output_tokens, "totalTokens": prompt + plan.output_tokens}
    metrics = {"latencyMs": 1200}
    if call.subpath == "converse":
        content: list[dict[str, Any]] = []
        for block in plan.blocks:
            if block.kind == "thinking":
                content.append({"reasoningContent": {"reasoningText": {"text": block.text,
                                                                       "signature": block.signature}}})
            elif block.kind == "tool":
                content.append({"toolUse": {"toolUseId": _tool_id(call, block.tool_index), "name": block.tool_name,
                                            "input": json.loads(block.tool_args)}})
            else:
                content.append({"text": block.full_text()})
        response: dict[str, Any] = {
            "output": {"message": {"role": "assistant", "content": content}}, "stopReason": plan.stop,
            "usage": usage, "metrics": metrics,
        }
        if wants_stop_sequence:
            # Bedrock returns the model's own fields only when asked for them by path.
            response["additionalModelResponseFields"] = {"stop_sequence": plan.stop_sequence}
        if call.directive.no_usage:
            del response["usage"]
        return JsonReply(200, response)

    literal = call.directive.python_literals
    binary = call.spec.converse_stream_framing == "eventstream"
    counter = iter(range(1 << 30))

    def frame(event: Mapping[str, Any]) -> bytes:
        if binary:
            return converse_frame(event, next(counter))
        text = repr(event) if literal else json.dumps(event, separators=(",", ":"))
        return b"data: " + text.encode("utf-8") + b"\n\n"

    def events() -> Iterator[Mapping[str, Any]]:
        yield {"messageStart": {"role": "assistant"}}
        for index, block in enumerate(plan.blocks):
            if block.kind == "thinking":
                for word in _words(block.text):
                    yield {"contentBlockDelta": {"contentBlockIndex": index,
                                                 "delta": {"reasoningContent": {"text": word}}}}
                yield {"contentBlockDelta": {"contentBlockIndex": index,
                                             "delta": {"reasoningContent": {"signature": block.signature}}}}
            elif block.kind == "tool":
                yield {"contentBlockStart": {"contentBlockIndex": index, "start": {"toolUse": {
                    "name": block.tool_name, "toolUseId": _tool_id(call, block.tool_index)}}}}
                for fragment in json_fragments(block.tool_args):
                    yield {"contentBlockDelta": {"contentBlockIndex": index,
                                                 "delta": {"toolUse": {"input": fragment}}}}
            else:
                for piece in block.pieces():
                    yield {"contentBlockDelta": {"contentBlockIndex": index, "delta": {"text": piece}}}
            yield {"contentBlockStop": {"contentBlockIndex": index}}
        if wants_stop_sequence:
            yield {"messageStop": {"additionalModelResponseFields": {"delta": {"stop_sequence": plan.stop_sequence}},
                                   "stopReason": plan.stop}}
        else:
            yield {"messageStop": {"stopReason": plan.stop}}
        metadata: dict[str, Any] = {"metrics": metrics}
        if not call.directive.no_usage:
            metadata["usage"] = {**usage, "serverToolUsage": {}}
        yield {"metadata": metadata}

    def error_event() -> bytes:
        if binary:
            return exception_frame("modelStreamErrorException", "Model Stream Error")
        return frame({"modelStreamErrorException": {"message": "Model Stream Error", "originalStatusCode": 500,
                                                    "originalMessage": "The model stream failed."}})

    content_type = "application/vnd.amazon.eventstream" if binary else "text/event-stream; charset=utf-8"
    return StreamReply(content_type, (frame(e) for e in events()), error_event)


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]
