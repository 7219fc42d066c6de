"""
Fetching image URLs for Claude (issue 14, item 6): the SSRF rules with a fake resolver and a fake agent
(no sockets), the pinned connection on a memory reactor, and the whole path through the gateway.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.web.client import URI, ResponseDone
from twisted.web.http_headers import Headers

from app_harness import Harness
from sapproxy.config import ImageFetchSettings
from sapproxy.translate.remote_images import inline_images, remote_image_urls
from sapproxy.upstreams.image_fetch import (
    FetchedImage, ImageFetcher, ImageRefused, PinnedEndpoints, address_allowed, sniff_image,
)

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


class FakeTransport:
    def __init__(self) -> None:
        self.stopped = False

    def stopProducing(self) -> None:
        self.stopped = True


class FakeResponse:
    def __init__(self, code: int, body: bytes = b"", headers: dict[bytes, list[bytes]] | None = None,
                 length: int | None = None, chunk: int = 1024) -> None:
        self.code = code
        self.headers = Headers(headers or {})
        self.length = length
        self._body = body
        self._chunk = chunk
        self.transport = FakeTransport()

    def deliverBody(self, protocol: Any) -> None:
        protocol.makeConnection(self.transport)
        for i in range(0, len(self._body), self._chunk):
            if self.transport.stopped:
                break
            protocol.dataReceived(self._body[i:i + self._chunk])
        protocol.connectionLost(Failure(ResponseDone()))


class FakeAgent:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.requested: list[str] = []

    def request(self, method: bytes, uri: bytes, headers: Any = None, body: Any = None) -> Deferred[Any]:
        url = uri.decode()
        self.requested.append(url)
        answer = self.answers[url]
        return answer if isinstance(answer, Deferred) else succeed(answer)


class FakeDNS:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError("NXDOMAIN")
        return self.table[host]


class RecordingPins(PinnedEndpoints):
    def __init__(self) -> None:
        super().__init__(MemoryReactorClock())
        self.pinned: list[tuple[str, int, str]] = []

    def pin(self, host: str, port: int, address: str) -> None:
        self.pinned.append((host, port, address))
        super().pin(host, port, address)


DNS = {"img.example": ["93.184.216.34"], "evil.example": ["93.184.216.35", "10.0.0.7"],
       "meta.example": ["169.254.169.254"], "v6.example": ["2606:2800:220:1::1"], "mapped.example": ["::ffff:127.0.0.1"]}


def fetcher(answers: dict[str, Any], clock: Any = None, **settings: Any) -> tuple[ImageFetcher, FakeAgent, RecordingPins]:
    agent = FakeAgent(answers)
    pins = RecordingPins()
    return ImageFetcher(clock or Clock(), ImageFetchSettings(**settings), agent=agent, endpoints=pins,
                        resolve=FakeDNS(DNS)), agent, pins


def outcome(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the fetch did not finish"
    return results[0]


def refused(d: Deferred[Any]) -> str:
    result = outcome(d)
    assert isinstance(result, Failure) and result.check(ImageRefused), result
    return str(result.value)


def test_a_public_https_png_is_fetched_from_the_checked_address() -> None:
    f, agent, pins = fetcher({"https://img.example/a.png": FakeResponse(200, PNG)})
    image = outcome(f.fetch("https://img.example/a.png"))
    assert image == FetchedImage("image/png", PNG)
    assert pins.pinned == [("img.example", 443, "93.184.216.34")]


@pytest.mark.parametrize("url, reason", [
    ("http://img.example/a.png", "only https image URLs are fetched, not http"),
    ("ftp://img.example/a.png", "only https image URLs are fetched"),
    ("https://127.0.0.1/a.png", "non-public address (127.0.0.1)"),
    ("https://[::1]/a.png", "non-public address (::1)"),
    ("https://10.1.2.3/a.png", "non-public address"),
    ("https://192.168.1.1/a.png", "non-public address"),
    ("https://100.64.0.1/a.png", "non-public address"),
    ("https://meta.example/latest", "non-public address (169.254.169.254)"),
    ("https://evil.example/a.png", "non-public address (10.0.0.7)"),
    ("https://mapped.example/a.png", "non-public address (::ffff:127.0.0.1)"),
    ("https://nowhere.example/a.png", "could not be resolved"),
    ("https:///a.png", "names no host"),
    ("https://img.example:99999/a.png", "not a valid URL"),
])
def test_refused_before_any_connection(url: str, reason: str) -> None:
    f, agent, pins = fetcher({})
    assert reason in refused(f.fetch(url))
    assert agent.requested == [] and pins.pinned == []


def test_http_and_private_addresses_only_when_configured() -> None:
    f, agent, _ = fetcher({"http://127.0.0.1:8080/a.png": FakeResponse(200, PNG)}, allow_http=True,
                          allow_private_addresses=True)
    assert outcome(f.fetch("http://127.0.0.1:8080/a.png")).media_type == "image/png"


def test_every_redirect_is_checked_and_counted() -> None:
    answers = {
        "https://img.example/1": FakeResponse(302, headers={b"location": [b"/2"]}),
        "https://img.example/2": FakeResponse(301, headers={b"location": [b"https://v6.example/3"]}),
        "https://v6.example/3": FakeResponse(200, PNG),
        "https://img.example/bad": FakeResponse(307, headers={b"location": [b"https://meta.example/x"]}),
        "https://img.example/loop": FakeResponse(302, headers={b"location": [b"/loop"]}),
        "https://img.example/plain": FakeResponse(302, headers={b"location": [b"http://img.example/x"]}),
    }
    f, agent, pins = fetcher(answers)
    assert outcome(f.fetch("https://img.example/1")).data == PNG
    assert pins.pinned[-1] == ("v6.example", 443, "2606:2800:220:1::1")
    assert "non-public address (169.254.169.254)" in refused(f.fetch("https://img.example/bad"))
    assert "redirected more than 3 times" in refused(f.fetch("https://img.example/loop"))
    assert "only https" in refused(f.fetch("https://img.example/plain"))


def test_size_type_status_and_time_caps() -> None:
    clock = Clock()
    never: Deferred[Any] = Deferred()
    big = FakeResponse(200, PNG + b"\0" * 5000)
    answers = {
        "https://img.example/declared": FakeResponse(200, PNG, length=10_000_000),
        "https://img.example/big": big,
        "https://img.example/html": FakeResponse(200, b"<html>hello</html>"),
        "https://img.example/404": FakeResponse(404, b"nope"),
        "https://img.example/slow": never,
    }
    f, _, _ = fetcher(answers, clock, max_bytes=4096, timeout=5.0)
    assert "larger than 4096 bytes" in refused(f.fetch("https://img.example/declared"))
    assert "larger than 4096 bytes" in refused(f.fetch("https://img.example/big"))
    assert big.transport.stopped
    assert "did not give a PNG, JPEG, GIF or WebP image" in refused(f.fetch("https://img.example/html"))
    assert "answered HTTP 404" in refused(f.fetch("https://img.example/404"))
    d = f.fetch("https://img.example/slow")
    clock.advance(5.1)
    assert "took longer than 5 s" in refused(d)


def test_signatures_and_addresses() -> None:
    assert sniff_image(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert sniff_image(b"GIF89a...") == "image/gif"
    assert sniff_image(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert sniff_image(b"%PDF-1.7") is None
    assert address_allowed("8.8.8.8") and address_allowed("2001:4860:4860::8888")
    for address in ("0.0.0.0", "224.0.0.1", "fe80::1%eth0", "fc00::1", "not an address"):
        assert not address_allowed(address)


def test_pinned_endpoints_connect_to_the_checked_address_only() -> None:
    reactor = MemoryReactorClock()
    pins = PinnedEndpoints(reactor)
    with pytest.raises(ImageRefused):
        pins.endpointForURI(URI.fromBytes(b"https://img.example/a.png"))
    pins.pin("img.example", 443, "93.184.216.34")
    pins.endpointForURI(URI.fromBytes(b"https://img.example/a.png")).connect(object())  # type: ignore[arg-type]
    pins.pin("v6.example", 80, "2606:2800:220:1::1")
    pins.endpointForURI(URI.fromBytes(b"http://v6.example/a.png")).connect(object())  # type: ignore[arg-type]
    assert [(host, port) for host, port, *_ in reactor.tcpClients] == [("93.184.216.34", 443), ("2606:2800:220:1::1", 80)]


# ------------------------------------------------------------------------------ the bodies, both dialects

def test_remote_images_are_found_and_inlined_in_both_dialects() -> None:
    openai = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "https://img.example/a.png", "detail": "low"}},
        {"type": "image_url", "image_url": "data:image/png;base64,AAAA"}]}]}
    assert remote_image_urls("openai", openai) == [("https://img.example/a.png", "messages[0].content[1].image_url.url")]
    out = inline_images("openai", openai, {"https://img.example/a.png": ("image/png", PNG)})
    assert out["messages"][0]["content"][1]["image_url"] == {
        "url": "data:image/png;base64," + base64.b64encode(PNG).decode(), "detail": "low"}
    assert openai["messages"][0]["content"][1]["image_url"]["url"] == "https://img.example/a.png"  # not mutated
    anthropic = {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://img.example/b.png"}},
        {"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://img.example/c.png"}}]}]}]}
    assert [u for u, _ in remote_image_urls("anthropic", anthropic)] == ["https://img.example/b.png", "https://img.example/c.png"]
    out = inline_images("anthropic", anthropic, {"https://img.example/b.png": ("image/png", b"b"),
                                                 "https://img.example/c.png": ("image/gif", b"c")})
    assert out["messages"][0]["content"][0]["source"] == {"type": "base64", "media_type": "image/png", "data": "Yg=="}
    assert out["messages"][0]["content"][1]["content"][0]["source"]["media_type"] == "image/gif"


# ------------------------------------------------------------------------------ through the gateway

URL = "https://img.example/cat.png"


def _ask(h: Harness, path: str, model: str, image: dict[str, Any]) -> tuple[Any, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": [{"type": "text", "text": "what"}, image]}]}
    if path == "/v1/messages":
        body["max_tokens"] = 50
    response, raw = h.post(path, body)
    return response, json.loads(raw)


def test_claude_gets_the_fetched_bytes_from_either_dialect() -> None:
    f, agent, _ = fetcher({URL: FakeResponse(200, PNG)})
    h = Harness(images=f)
    for path, image in (("/v1/chat/completions", {"type": "image_url", "image_url": {"url": URL}}),
                        ("/v1/messages", {"type": "image", "source": {"type": "url", "url": URL}})):
        response, body = _ask(h, path, "anthropic--claude-4.5-sonnet", image)
        assert response.code == 200, body
        sent = [r["body"] for r in h.simulator.requests if "/invoke" in r["path"]][-1]
        assert sent["messages"][0]["content"][1]["source"] == {
            "type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}
    # GPT fetches URLs itself: nothing fetched for it
    before = len(agent.requested)
    assert _ask(h, "/v1/chat/completions", "gpt-4.1", {"type": "image_url", "image_url": {"url": URL}})[0].code == 200
    assert len(agent.requested) == before


def test_a_refused_image_is_a_400_in_the_clients_dialect() -> None:
    f, _, _ = fetcher({})
    h = Harness(images=f)
    response, body = _ask(h, "/v1/chat/completions", "anthropic--claude-4.5-sonnet",
                          {"type": "image_url", "image_url": {"url": "https://meta.example/x.png"}})
    assert response.code == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == "messages[0].content[1].image_url.url"
    assert "non-public address (169.254.169.254)" in body["error"]["message"]
    response, body = _ask(Harness(), "/v1/messages", "anthropic--claude-4.5-sonnet",
                          {"type": "image", "source": {"type": "url", "url": URL}})
    assert response.code == 400 and body["type"] == "error"
    assert "does not fetch them; send the image inline" in body["error"]["message"]
    assert not [r for r in h.simulator.requests if "/invoke" in r["path"]]
