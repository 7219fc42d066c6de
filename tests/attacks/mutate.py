"""
A mutation fuzzer for request bodies, as the red team ran it: start from a valid body for a route, then
replace, delete or insert values anywhere in it (wrong types, lone surrogates, NUL, NaN, huge numbers, deep
nesting), and send the result as raw JSON text.  Deterministic for a seed, so a failure can be replayed.
"""

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any

SEEDS: dict[str, list[dict[str, Any]]] = {
    "/v1/chat/completions": [
        {"model": "gpt-4.1", "messages": [{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": "hi"}], "max_tokens": 50},
        {"model": "anthropic--claude-4.5-sonnet", "stream": True, "stream_options": {"include_usage": True},
         "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"},
                                                   {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                      {"role": "assistant", "content": None, "tool_calls": [
                          {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                      {"role": "tool", "tool_call_id": "call_1", "content": "42"}],
         "tools": [{"type": "function", "function": {"name": "f", "description": "d",
                                                      "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}],
         "tool_choice": "auto", "temperature": 0.5, "stop": ["x"], "reasoning_effort": "low"},
        {"model": "gemini-2.5-pro", "stream": True, "messages": [{"role": "user", "content": "hi"}],
         "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
         "tools": [{"type": "function", "function": {"name": "g", "parameters": {"type": "object"}}}],
         "tool_choice": {"type": "function", "function": {"name": "g"}}},
    ],
    "/v1/messages": [
        {"model": "claude-sonnet-4-5-20250929", "max_tokens": 100, "system": [{"type": "text", "text": "s"}],
         "messages": [{"role": "user", "content": "hi"}]},
        {"model": "gpt-4.1", "max_tokens": 100, "stream": True,
         "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"},
                                                   {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
                      {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}]},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "42"}]}]}],
         "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}],
         "tool_choice": {"type": "auto"}, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"model": "gemini-2.5-pro", "max_tokens": 100, "stream": True, "temperature": 0.2, "stop_sequences": ["z"],
         "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
             {"type": "thinking", "thinking": "hm", "signature": "sig"}, {"type": "text", "text": "ok"}]},
             {"role": "user", "content": "more"}], "metadata": {"user_id": "u"}},
        {"model": "anthropic--claude-4.5-haiku", "max_tokens": 100, "stream": True,
         "messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "t", "input_schema": {"type": "object"}}],
         "tool_choice": {"type": "tool", "name": "t"}},
    ],
    "/v1/messages/count_tokens": [
        {"model": "claude-sonnet-4-5", "system": "s", "messages": [{"role": "user", "content": "hello there"}],
         "tools": [{"name": "f", "input_schema": {"type": "object"}}]},
        {"model": "gpt-4.1", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"},
                                                                       {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]},
    ],
    "/v1/embeddings": [
        {"model": "text-embedding-3-small", "input": "hello"},
        {"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 8},
    ],
}

_KEYS = ["type", "text", "content", "role", "model", "stream", "name", "id", "input", "tools", "source",
         "image_url", "url", "function", "arguments", "parameters", "stream_options", "include_usage",
         "max_tokens", "tool_choice", "thinking", "budget_tokens", "messages", "system", "data"]


def _junk(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(22)
    if pick == 0:
        return []
    if pick == 1:
        return {}
    if pick == 2:
        return ""
    if pick == 3:
        return "\ud800"
    if pick == 4:
        return "a\udfffb"
    if pick == 5:
        return "gpt\x00x"
    if pick == 6:
        return float("nan")
    if pick == 7:
        return float("inf")
    if pick == 8:
        return 10 ** rng.choice([3, 30, 300, 1000])
    if pick == 9:
        return -1
    if pick == 10:
        return None
    if pick == 11:
        return rng.choice([True, False])
    if pick == 12:
        return 1.5
    if pick == 13:
        # Written into the text by encode(): json.dumps itself cannot nest this deep.
        return f"__deep_{rng.choice([50, 200, 480, 2000])}_{rng.randrange(2)}__"
    if pick == 14:
        return [1]
    if pick == 15:
        return rng.choice(_KEYS)
    if pick == 16:
        return "x\r\nforged: log line"
    if pick == 17 and depth < 2:
        return {rng.choice(_KEYS): _junk(rng, depth + 1)}
    if pick == 18 and depth < 2:
        return [_junk(rng, depth + 1)]
    if pick == 19:
        return {"type": rng.choice(["text", "image", "tool_use", "tool_result", "thinking", "image_url", []])}
    if pick == 20:
        return "\u2028\ufeff\U0001f600"
    return rng.randrange(-3, 5)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, prefix + (i,))
    return out


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def mutate(body: dict[str, Any], rng: random.Random, rounds: int = 3) -> Any:
    body = copy.deepcopy(body)
    for _ in range(rng.randint(1, rounds)):
        paths = _paths(body)
        path = rng.choice(paths)
        action = rng.randrange(4)
        if not path:
            if action == 0 and rng.random() < 0.05:
                return _junk(rng)
            continue
        parent = _get(body, path[:-1])
        last = path[-1]
        if action == 0 or action == 1:
            parent[last] = _junk(rng)
        elif action == 2:
            if isinstance(parent, dict):
                del parent[last]
            else:
                parent.pop(last)
        else:
            if isinstance(parent, dict):
                parent[rng.choice(_KEYS)] = _junk(rng)
            else:
                parent.insert(rng.randrange(len(parent) + 1), _junk(rng))
    return body


def encode(body: Any, rng: random.Random) -> bytes:
    """
    The mutated body as JSON text: surrogates as escapes (as a JSON client would send them), NaN and Infinity
    as the bare literals Python writes.
    """
    text = json.dumps(body, ensure_ascii=True, allow_nan=True)
    for match in set(re.findall(r'"__deep_(\d+)_(\d)__"', text)):
        depth, kind = int(match[0]), match[1]
        opening, closing = ("[", "]") if kind == "0" else ('{"a":', "}")
        text = text.replace(f'"__deep_{match[0]}_{kind}__"', opening * depth + "1" + closing * depth)
    return text.encode()


def bodies(route: str, seed: int, count: int) -> list[bytes]:
    rng = random.Random(f"{route}:{seed}")
    seeds = SEEDS[route]
    return [encode(mutate(rng.choice(seeds), rng), rng) for _ in range(count)]
