"""
The OpenAI Responses API surface: C{POST /v1/responses} (streamed and not, every family),
C{GET}/C{DELETE /v1/responses/{id}} and C{GET /v1/responses/{id}/input_items} for stored responses, and
C{POST /v1/responses/input_tokens}.

Auth, body limits, rate limits, usage rows, metrics and failover are the frame's, as on every route; errors are
OpenAI's shape.  A response is stored (C{store} defaults to true, as OpenAI's does) once it completed or was cut
by its token limit, with the conversation it continues, so C{previous_response_id} works for every family.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.logger import Logger

from sapproxy.auth import ClientIdentity
from sapproxy.dispatch.plan import ClientRequest
from sapproxy.errors import GatewayError
from sapproxy.record import RequestRecord
from sapproxy.translate.client.openai_responses import (
    CLIENT_API, ResponseFrame, client_view, responses_request_to_chat, responses_request_to_ir,
)
from sapproxy.translate.counting import count_chat_tokens, count_tokens
from sapproxy.translate.responses_items import map_tools
from sapproxy.web.frame import Route, ServicesRef

log = Logger()

PATH_PREFIX = b"/v1/responses"

_BOOLS = ("stream", "store", "parallel_tool_calls", "background")


def _check(body: dict[str, Any]) -> None:
    if "input" not in body and "previous_response_id" not in body:
        raise GatewayError("invalid_request", "input: required, a string or an array of input items", param="input")
    for key in _BOOLS:
        if key in body and body[key] is not None and not isinstance(body[key], bool):
            raise GatewayError("invalid_request", f"{key}: expected true or false", param=key)
    if body.get("background"):
        raise GatewayError("invalid_request", "background: background responses are not supported by this gateway",
                           param="background")
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise GatewayError("invalid_request", "previous_response_id: expected a response id", param="previous_response_id")
    include = body.get("include")
    if include is not None and (not isinstance(include, list) or not all(isinstance(i, str) for i in include)):
        raise GatewayError("invalid_request", "include: expected an array of strings", param="include")
    for key in ("reasoning", "text", "metadata"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            raise GatewayError("invalid_request", f"{key}: expected an object", param=key)
    for key in ("instructions", "user", "prompt_cache_key", "safety_identifier"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise GatewayError("invalid_request", f"{key}: expected a string", param=key)
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise GatewayError("invalid_request", f"{key}: expected a number", param=key)
    tokens = body.get("max_output_tokens")
    if tokens is not None and (not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1):
        raise GatewayError("invalid_request", "max_output_tokens: expected a positive integer", param="max_output_tokens")
    if body.get("conversation") is not None:
        raise GatewayError("invalid_request", "conversation: conversations are not supported by this gateway; use "
                           "previous_response_id", param="conversation")


def _not_found(response_id: str, param: str | None = None) -> GatewayError:
    return GatewayError("not_found", f"Response with id '{response_id}' not found.", param=param)


def install(app: Klein, ref: ServicesRef) -> None:
    route = Route(ref, CLIENT_API)

    async def history_of(body: dict[str, Any], identity: ClientIdentity) -> list[dict[str, Any]]:
        previous = body.get("previous_response_id")
        if previous is None:
            return []
        store = route.services.responses
        if store is None:
            raise GatewayError("invalid_request", "previous_response_id: this gateway keeps no responses (no usage "
                               "store); send the whole conversation in input", param="previous_response_id")
        stored = await store.load(previous, identity.key_id)
        if stored is None:
            raise _not_found(previous, "previous_response_id")
        return stored.history()  # type: ignore[no-any-return]

    async def prepared(request: Any, record: RequestRecord, identity: ClientIdentity, *,
                       streams: bool) -> tuple[Any, Any, Any]:
        """
        What creating and counting a response share: the checked body, the model it resolves to, and the
        conversation its C{previous_response_id} stands for.

        @param streams: the route can stream (the record says whether this request asked to).
        """
        body = route.body(request, record)
        resolved = route.resolve(record, body, identity)
        route.announce(request, resolved)
        _check(body)
        if "input" not in body:
            body["input"] = []
        if streams:
            record.stream = bool(body.get("stream"))
        return body, resolved, await history_of(body, identity)

    @app.route("/v1/responses", methods=["POST"])
    async def create(request: Any) -> Any:
        async def work(record: RequestRecord, identity: ClientIdentity) -> Any:
            body, resolved, history = await prepared(request, record, identity, streams=True)
            await route.limit(identity)
            call = CLIENT_API.call(body, record.model_requested, {"history": history})
            stored = body.get("store", True) is not False
            del body, history  # the call holds them until the answer is committed, then lets them go
            if call.tools.dropped:
                log.info("responses: tools of type {types} dropped (no upstream here serves them); request {id}",
                         types=", ".join(call.tools.dropped), id=record.request_id)
            result = await route.forward(record, request, resolved.name, ClientRequest(CLIENT_API, call, {}))
            final = call.final
            if final is None or final.get("status") == "failed":
                record.error_type = record.error_type or "response_failed"
            elif stored and route.services.responses is not None:
                route.services.responses.save(identity.key_id, resolved.name, record.outcome.deployment,
                                              call.items(), final)
            return result

        return await route.run(request, "/v1/responses", work)

    @app.route("/v1/responses/input_tokens", methods=["POST"])
    async def input_tokens(request: Any) -> Any:
        async def work(record: RequestRecord, identity: ClientIdentity) -> Any:
            body, resolved, history = await prepared(request, record, identity, streams=False)
            tools = map_tools(body.get("tools"), body.get("tool_choice"))
            if resolved.family == "openai":
                count = count_chat_tokens(responses_request_to_chat(body, tools, history), resolved.family)
            else:
                count = count_tokens(dict(responses_request_to_ir(body, tools, history)), resolved.family)
            return {"object": "response.input_tokens", "input_tokens": count}

        return await route.run(request, "/v1/responses/input_tokens", work)

    @app.route("/v1/responses/<string:response_id>", methods=["GET", "DELETE"])
    async def stored(request: Any, response_id: str) -> Any:
        async def work(record: RequestRecord, identity: ClientIdentity) -> Any:
            store = route.services.responses
            if store is None:
                raise _not_found(response_id)
            if request.method == b"DELETE":
                if not await store.delete(response_id, identity.key_id):
                    raise _not_found(response_id)
                return {"id": response_id, "object": "response", "deleted": True}
            found = await store.load(response_id, identity.key_id)
            if found is None:
                raise _not_found(response_id)
            include = [v.decode("utf-8", "replace") for v in request.args.get(b"include[]", [])
                       + request.args.get(b"include", [])]
            frame = ResponseFrame.for_request({"include": include}, found.response.get("model") or "",
                                              map_tools(None), created_at=0)
            return client_view(found.response, frame)

        return await route.run(request, "/v1/responses/{id}", work)

    @app.route("/v1/responses/<string:response_id>/input_items", methods=["GET"])
    async def input_items_of(request: Any, response_id: str) -> Any:
        async def work(record: RequestRecord, identity: ClientIdentity) -> Any:
            store = route.services.responses
            found = await store.load(response_id, identity.key_id) if store is not None else None
            if found is None:
                raise _not_found(response_id)
            # Newest first unless asked otherwise, as OpenAI lists them; the whole conversation in one page.
            items = [item for item in found.items if isinstance(item, dict)]
            order = (request.args.get(b"order") or [b"desc"])[0]
            if order != b"asc":
                items = items[::-1]
            ids = [item.get("id") for item in items if isinstance(item.get("id"), str)]
            return {"object": "list", "data": items, "first_id": ids[0] if ids else None,
                    "last_id": ids[-1] if ids else None, "has_more": False}

        return await route.run(request, "/v1/responses/{id}/input_items", work)
