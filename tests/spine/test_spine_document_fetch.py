"""
PDF documents named by URL for Claude (issue 14, item 20): fetched by the image fetcher's SSRF rules with
a PDF check and its own size cap, sent as base64; a clear 400 where fetching is off or refused.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from app_harness import Harness
from sapproxy.translate.remote_images import inline_images, remote_image_urls, remote_media_urls
from sapproxy.upstreams.image_fetch import FetchedImage, sniff_document
from test_spine_image_fetch import PNG, FakeResponse, fetcher, outcome, refused

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
URL = "https://img.example/report.pdf"


def test_a_public_pdf_is_fetched_with_its_own_cap() -> None:
    f, agent, pins = fetcher({URL: FakeResponse(200, PDF, {b"content-type": [b"application/pdf"]})})
    assert outcome(f.fetch(URL, "document")) == FetchedImage("application/pdf", PDF)
    assert pins.pinned == [("img.example", 443, "93.184.216.34")]
    # servers that call a PDF a byte stream, or say nothing, are fine: the bytes decide
    for headers in ({b"content-type": [b"application/octet-stream"]}, {}):
        f, _, _ = fetcher({URL: FakeResponse(200, PDF, headers)})
        assert outcome(f.fetch(URL, "document")).media_type == "application/pdf"


@pytest.mark.parametrize("answer, reason", [
    (FakeResponse(200, b"<html>login</html>", {b"content-type": [b"text/html"]}), "answered text/html, not a PDF"),
    (FakeResponse(200, b"%PDF-1.7 but html", {b"content-type": [b"text/html; charset=utf-8"]}), "not a PDF"),
    (FakeResponse(200, PNG, {b"content-type": [b"application/pdf"]}), "the URL did not give a PDF document"),
    (FakeResponse(200, PDF + b"x" * 200, length=300), "the document is larger than 100 bytes"),
    (FakeResponse(200, PDF + b"x" * 200), "the document is larger than 100 bytes"),
    (FakeResponse(404), "the document URL answered HTTP 404"),
])
def test_what_is_not_a_pdf_within_the_cap_is_refused(answer: FakeResponse, reason: str) -> None:
    f, _, _ = fetcher({URL: answer}, max_document_bytes=100)
    assert reason in refused(f.fetch(URL, "document"))


def test_the_document_cap_is_apart_from_the_image_cap() -> None:
    f, _, _ = fetcher({URL: FakeResponse(200, PDF)}, max_bytes=10)
    assert outcome(f.fetch(URL, "document")).data == PDF
    f, _, _ = fetcher({"https://img.example/a.png": FakeResponse(200, PNG)}, max_document_bytes=10)
    assert outcome(f.fetch("https://img.example/a.png")).data == PNG


@pytest.mark.parametrize("url, reason", [
    ("http://img.example/a.pdf", "only https document URLs are fetched, not http"),
    ("https://meta.example/a.pdf", "non-public address (169.254.169.254)"),
    ("https://evil.example/a.pdf", "non-public address (10.0.0.7)"),
])
def test_documents_follow_the_ssrf_rules(url: str, reason: str) -> None:
    f, agent, pins = fetcher({})
    assert reason in refused(f.fetch(url, "document"))
    assert agent.requested == [] and pins.pinned == []


def test_sniff_document() -> None:
    assert sniff_document(PDF) == "application/pdf"
    assert sniff_document(b" %PDF-") is None and sniff_document(PNG) is None


def test_remote_documents_are_found_and_inlined() -> None:
    body = {"messages": [{"role": "user", "content": [
        {"type": "document", "title": "Q3", "source": {"type": "url", "url": URL}},
        {"type": "image", "source": {"type": "url", "url": "https://img.example/b.png"}},
        {"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "document", "source": {"type": "url", "url": URL}}]}]}]}
    assert remote_media_urls("anthropic", body) == [
        (URL, "messages[0].content[0].source.url", "document"),
        ("https://img.example/b.png", "messages[0].content[1].source.url", "image"),
        (URL, "messages[0].content[2].content[0].source.url", "document")]
    assert remote_image_urls("anthropic", body) == [("https://img.example/b.png", "messages[0].content[1].source.url")]
    out = inline_images("anthropic", body, {"https://img.example/b.png": ("image/png", PNG)},
                        {URL: ("application/pdf", PDF)})
    pdf = {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(PDF).decode()}
    assert out["messages"][0]["content"][0] == {"type": "document", "title": "Q3", "source": pdf}
    assert out["messages"][0]["content"][2]["content"][0]["source"] == pdf
    assert out["messages"][0]["content"][1]["source"]["media_type"] == "image/png"


# ------------------------------------------------------------------------------ through the gateway

def _ask(h: Harness, model: str, block: dict[str, Any]) -> tuple[Any, Any]:
    body = {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "summarise"}, block]}]}
    response, raw = h.post("/v1/messages", body)
    return response, json.loads(raw)


DOC = {"type": "document", "title": "Q3 report", "source": {"type": "url", "url": URL}}


def test_claude_gets_the_fetched_pdf_as_base64() -> None:
    f, agent, _ = fetcher({URL: FakeResponse(200, PDF, {b"content-type": [b"application/pdf"]})})
    h = Harness(images=f)
    response, body = _ask(h, "anthropic--claude-4.5-sonnet", DOC)
    assert response.code == 200, body
    assert body["content"][0]["type"] == "text"
    sent = [r["body"] for r in h.simulator.requests if "/invoke" in r["path"]][-1]
    assert sent["messages"][0]["content"][1] == {
        "type": "document", "title": "Q3 report",
        "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(PDF).decode()}}
    assert agent.requested == [URL]


def test_a_refused_or_unfetched_document_is_a_clear_400() -> None:
    f, _, _ = fetcher({URL: FakeResponse(200, b"<html/>", {b"content-type": [b"text/html"]})})
    h = Harness(images=f)
    response, body = _ask(h, "anthropic--claude-4.5-sonnet", DOC)
    assert response.code == 400 and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == ("messages[0].content[1].source.url: the document was not fetched: the "
                                        "document URL answered text/html, not a PDF")
    off = Harness()
    response, body = _ask(off, "anthropic--claude-4.5-sonnet", DOC)
    assert response.code == 400
    assert "takes no document URLs and this gateway does not fetch them; send the document inline (a base64 " \
           "source)" in body["error"]["message"]
    assert not [r for r in h.simulator.requests + off.simulator.requests if "/invoke" in r["path"]]


def test_gpt_gets_a_fetched_pdf_as_file_data_and_gemini_the_url() -> None:
    f, agent, _ = fetcher({URL: FakeResponse(200, PDF)})
    h = Harness(images=f)
    response, body = _ask(h, "gpt-4.1", DOC)
    assert response.code == 200, body
    sent = [r["body"] for r in h.simulator.requests if "/chat/completions" in r["path"]][-1]
    assert sent["messages"][0]["content"][1] == {"type": "file", "file": {
        "filename": "Q3 report", "file_data": "data:application/pdf;base64," + base64.b64encode(PDF).decode()}}
    assert agent.requested == [URL]
    response, body = _ask(h, "gemini-2.5-pro", DOC)
    assert response.code == 200, body
    sent = [r["body"] for r in h.simulator.requests if "generateContent" in r["path"]][-1]
    assert sent["contents"][0]["parts"][1] == {"fileData": {"mimeType": "application/pdf", "fileUri": URL}}
    assert agent.requested == [URL]  # Vertex fetches it itself
