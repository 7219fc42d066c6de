"""
Remote images inlined before a request is converted, for upstreams that take only inline images.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import FirstError, ensureDeferred, gatherResults

from sapproxy.models import ResolvedModel
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.remote_images import inline_images, remote_image_urls
from sapproxy.upstreams.image_fetch import ImageRefused

#: Model families whose upstream takes no image URLs: Claude on Bedrock (InvokeModel and Converse take
#: base64 only).  GPT fetches URLs itself; Vertex takes them as C{fileData}.
_INLINE_ONLY = frozenset({"claude"})


async def inline_remote_images(fetcher: Any, dialect: str, resolved: ResolvedModel, body: dict[str, Any]) -> dict[str, Any]:
    """
    C{body} with its remote images fetched and inlined when C{resolved}'s upstream needs it; C{body} itself
    otherwise.

    @param fetcher: an L{sapproxy.upstreams.image_fetch.ImageFetcher}, or None where fetching is off.
    @raise InvalidRequest: fetching is off, or an image was refused (the message says why, the param
        names the part).
    """
    if resolved.family not in _INLINE_ONLY:
        return body
    found = remote_image_urls(dialect, body)
    if not found:
        return body
    if fetcher is None:
        url, path = found[0]
        raise InvalidRequest(f"{path}: {resolved.requested} takes no image URLs and this gateway does not fetch "
                             "them; send the image inline (a base64 data URL)", path)
    urls: dict[str, str] = {}
    for url, path in found:
        urls.setdefault(url, path)

    async def one(url: str, path: str) -> tuple[str, tuple[str, bytes]]:
        try:
            image = await fetcher.fetch(url)
        except ImageRefused as e:
            raise InvalidRequest(f"{path}: the image was not fetched: {e}", path) from None
        return url, (image.media_type, image.data)

    try:
        results = await gatherResults([ensureDeferred(one(url, path)) for url, path in urls.items()],
                                      consumeErrors=True)
    except FirstError as e:
        e.subFailure.raiseException()
        raise  # unreachable: raiseException raises
    return inline_images(dialect, body, dict(results))
