"""
Images a client names by URL, found in and inlined into its request body (either dialect).  Pure: the
fetching is L{sapproxy.upstreams.image_fetch}'s, done before any converter runs, and the bytes come in here.

OpenAI: C{{"type": "image_url", "image_url": {"url": "https://..."}}} in any message's content (the
C{image_url} may also be the bare string).  Anthropic: C{{"type": "image", "source": {"type": "url", "url":
...}}} in a message's content or in a C{tool_result}'s content.  Inlined, they become a base64 data URL and
a C{base64} source, as if the client had sent the bytes.
"""

from __future__ import annotations

import base64
import copy
from typing import Any, Iterator, Mapping

__all__ = ["remote_image_urls", "inline_images"]


def _is_remote(url: Any) -> bool:
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))


def _openai_parts(body: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """(part, path) for every OpenAI image part whose URL is remote."""
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        content = message.get("content") if isinstance(message, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else ()):
            if isinstance(part, dict) and part.get("type") == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else image
                if _is_remote(url):
                    yield part, f"messages[{i}].content[{j}].image_url.url"


def _anthropic_blocks(body: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """(block, path) for every Anthropic image block with a remote C{url} source."""
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        content = message.get("content") if isinstance(message, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(block, dict):
                continue
            candidates = [(block, f"messages[{i}].content[{j}]")]
            if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                candidates = [(inner, f"messages[{i}].content[{j}].content[{k}]")
                              for k, inner in enumerate(block["content"]) if isinstance(inner, dict)]
            for candidate, path in candidates:
                source = candidate.get("source")
                if candidate.get("type") == "image" and isinstance(source, dict) and source.get("type") == "url" \
                        and _is_remote(source.get("url")):
                    yield candidate, f"{path}.source.url"


def _found(dialect: str, body: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    return _openai_parts(body) if dialect == "openai" else _anthropic_blocks(body)


def _url(dialect: str, item: dict[str, Any]) -> str:
    if dialect == "openai":
        image = item["image_url"]
        return str(image["url"] if isinstance(image, dict) else image)
    return str(item["source"]["url"])


def remote_image_urls(dialect: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """The remote image URLs of a request in C{dialect} (C{openai} or C{anthropic}), with their paths."""
    return [(_url(dialect, item), path) for item, path in _found(dialect, body)]


def inline_images(dialect: str, body: dict[str, Any], images: Mapping[str, tuple[str, bytes]]) -> dict[str, Any]:
    """
    A copy of C{body} whose remote images found in C{images} (URL -> media type and bytes) are inline.
    """
    out = copy.deepcopy(body)
    for item, _ in list(_found(dialect, out)):
        fetched = images.get(_url(dialect, item))
        if fetched is None:
            continue
        media_type, data = fetched
        encoded = base64.b64encode(data).decode("ascii")
        if dialect == "openai":
            image = item["image_url"]
            inline = f"data:{media_type};base64,{encoded}"
            item["image_url"] = {**image, "url": inline} if isinstance(image, dict) else {"url": inline}
        else:
            item["source"] = {"type": "base64", "media_type": media_type, "data": encoded}
    return out
