"""
Remote images and PDF documents inlined before a request is converted, for upstreams that take only
inline ones.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import FirstError, ensureDeferred, gatherResults

from sapproxy.models import ResolvedModel
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.remote_images import inline_images, remote_media_urls
from sapproxy.upstreams.image_fetch import ImageRefused

#: Model families -> what their upstream takes only inline: Claude on Bedrock (InvokeModel and Converse take
#: base64 images and documents only); GPT fetches image URLs itself but its C{file} parts have no URL form.
#: Vertex takes both as C{fileData}.
_INLINE_ONLY = {"claude": frozenset({"image", "document"}), "openai": frozenset({"document"})}


async def inline_remote_images(fetcher: Any, dialect: str, resolved: ResolvedModel, body: dict[str, Any]) -> dict[str, Any]:
    """
    C{body} with its remote images and documents fetched and inlined when C{resolved}'s upstream needs it;
    C{body} itself otherwise.

    @param fetcher: an L{sapproxy.upstreams.image_fetch.ImageFetcher}, or None where fetching is off.
    @raise InvalidRequest: fetching is off, or an image was refused (the message says why, the param
        names the part).
    """
    kinds = _INLINE_ONLY.get(resolved.family, frozenset())
    found = [item for item in remote_media_urls(dialect, body) if item[2] in kinds]
    if not found:
        return body
    if fetcher is None:
        url, path, kind = found[0]
        how = "a base64 data URL" if dialect == "openai" else "a base64 source"
        raise InvalidRequest(f"{path}: {resolved.requested} takes no {kind} URLs and this gateway does not fetch "
                             f"them; send the {kind} inline ({how})", path)
    wanted: dict[tuple[str, str], str] = {}
    for url, path, kind in found:
        wanted.setdefault((kind, url), path)

    async def one(kind: str, url: str, path: str) -> tuple[str, str, tuple[str, bytes]]:
        try:
            fetched = await fetcher.fetch(url, kind)
        except ImageRefused as e:
            raise InvalidRequest(f"{path}: the {kind} was not fetched: {e}", path) from None
        return kind, url, (fetched.media_type, fetched.data)

    try:
        results = await gatherResults([ensureDeferred(one(kind, url, path)) for (kind, url), path in wanted.items()],
                                      consumeErrors=True)
    except FirstError as e:
        e.subFailure.raiseException()
        raise  # unreachable: raiseException raises
    images = {url: got for kind, url, got in results if kind == "image"}
    documents = {url: got for kind, url, got in results if kind == "document"}
    return inline_images(dialect, body, images, documents)
