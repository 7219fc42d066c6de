"""
The OpenAI Embeddings surface: C{POST /v1/embeddings}, served by GPT-family deployments as they are.
"""

from __future__ import annotations

from typing import Any

from klein import Klein

from sapproxy.dispatch.plan import ClientRequest
from sapproxy.errors import GatewayError
from sapproxy.translate.client.openai_chat import CLIENT_API
from sapproxy.auth import ClientIdentity
from sapproxy.record import RequestRecord
from sapproxy.web.frame import Route, ServicesRef

PATH_PREFIX = b"/v1/embeddings"


def install(app: Klein, ref: ServicesRef) -> None:
    route = Route(ref, CLIENT_API)

    @app.route("/v1/embeddings", methods=["POST"])
    async def embeddings(request: Any) -> Any:
        async def work(record: RequestRecord, identity: ClientIdentity) -> Any:
            body = route.body(request, record)
            resolved = route.resolve(record, body, identity)
            route.announce(request, resolved)
            if resolved.family != "openai":
                raise GatewayError("invalid_request", f"model {record.model_requested!r} does not serve embeddings",
                                   param="model")
            given = body.get("input")
            if not (isinstance(given, str) or (isinstance(given, list) and given)):
                raise GatewayError("invalid_request", "input: required, a string or a non-empty list", param="input")
            if body.get("encoding_format", "float") not in ("float", "base64"):
                raise GatewayError("invalid_request", "encoding_format: expected float or base64",
                                   param="encoding_format")
            await route.limit(identity)
            call = CLIENT_API.call(body, record.model_requested, {})
            return await route.forward(record, request, resolved.name, ClientRequest(CLIENT_API, call, {}, embeddings=True))

        return await route.run(request, "/v1/embeddings", work)
