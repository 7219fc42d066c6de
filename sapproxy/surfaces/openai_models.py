"""
The OpenAI model list: C{GET /v1/models}, the configured models and aliases a key may use.
"""

from __future__ import annotations

import time
from typing import Any

from klein import Klein

from sapproxy.translate.client.openai_chat import CLIENT_API
from sapproxy.auth import ClientIdentity
from sapproxy.record import RequestRecord
from sapproxy.web.frame import Route, Services, ServicesRef

PATH_PREFIX = b"/v1/models"


def install(app: Klein, ref: ServicesRef) -> None:
    route = Route(ref, CLIENT_API)

    @app.route("/v1/models", methods=["GET"])
    async def models(request: Any) -> Any:
        async def work(record: RequestRecord, identity: ClientIdentity) -> Any:
            created = int(route.config.path.stat().st_mtime) if route.config.path.exists() else int(time.time())
            names = route.services.catalog.names
            if identity.models is not None:
                names = [n for n in names if n in identity.models]
            data = [{"id": name, "object": "model", "created": created, "owned_by": _owner(route.services, name)}
                    for name in names]
            data += [{"id": alias, "object": "model", "created": created, "owned_by": _owner(route.services, target)}
                     for alias, target in route.config.aliases.items() if target in names]
            # Client names another generation serves (warned about in the log), with what serves them.
            data += [{"id": asked, "object": "model", "created": created, "owned_by": _owner(route.services, target),
                      "served_by": target}
                     for asked, target in route.services.catalog.other_generation().items() if target in names]
            return {"object": "list", "data": data}

        return await route.run(request, "/v1/models", work)


def _owner(services: Services, name: str) -> str:
    return {"claude": "anthropic", "gemini": "google"}.get(services.catalog.family(name), "openai")
