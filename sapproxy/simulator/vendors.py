"""
The vendors' own APIs beside the simulated SAP AI Core, each with its own authentication, checked as strictly
as the real service checks it:

  - OpenAI-compatible C{POST /v1/chat/completions} and C{/v1/embeddings}, C{Authorization: Bearer} key;
  - Azure OpenAI C{POST /openai/deployments/{name}/chat/completions|embeddings?api-version=}, C{api-key};
  - Anthropic C{POST /v1/messages}, C{x-api-key} and C{anthropic-version} (betas as C{anthropic-beta});
  - Bedrock runtime C{POST /model/{id}/invoke|invoke-with-response-stream|converse|converse-stream}, every
    request's SigV4 signature verified with botocore against the test key pair below;
  - Gemini API C{POST /v1beta/models/{model}:generateContent|streamGenerateContent}, C{x-goog-api-key};
  - Vertex AI C{POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:...} with a bearer token
    from Google's OAuth token endpoint (C{POST /token}, a service account's RS256 JWT assertion verified
    against the test service account's key below).

After authentication each goes through the same handlers, directives and faults as the SAP deployments
(L{Simulator.serve}); faults are armed by the names in L{VENDOR_IDS} (or C{"*"}).  The keys are test values,
published here on purpose.
"""

from __future__ import annotations

import base64
import calendar
import hmac
import secrets
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from klein import Klein
from twisted.internet.defer import ensureDeferred
from twisted.web.iweb import IRequest

from . import anthropic_body, bedrock_api, openai_api, vertex_api
from .config import DeploymentSpec
from .replies import JsonReply

if TYPE_CHECKING:
    from .app import Simulator

OPENAI_KEY = "sk-sim-openai-key"
AZURE_KEY = "sim-azure-openai-key"
ANTHROPIC_KEY = "sk-ant-sim-key"
GEMINI_KEY = "sim-gemini-api-key"
AWS_ACCESS_KEY = "AKIASIMULATOREXAMPLE"
AWS_SECRET_KEY = "sim/Bedrock+Secret/EXAMPLEKEY0000000000000"
#: Temporary credentials (as from STS) carry this session token with the same key pair.
AWS_SESSION_TOKEN = "sim-session-token-EXAMPLE"

#: The test service account's e-mail and private key (Vertex AI): a key made for these tests, published here.
GOOGLE_SERVICE_ACCOUNT = "sapproxy-test@sim-project.iam.gserviceaccount.com"
GOOGLE_PRIVATE_KEY = """-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQD7voaSWm5DCgXK
EgzClbqxxTxZ6b57Ug0hM3t8WB0nYM/kivxSC3ByaAXnrhnRh6DKTOF9y0ZXkxay
YJh7iXJO+ErzVGOivM6j3ryNPSVkuwbC3CaJv6CT2dpjIZs1zNhTJTWt6vFKAu99
/f4vKq+6wlB4jjADX2HI9+W3+QyzCFlDQJiU88RdNzjh67PS5Kvwf6eIljcntnq4
LLyOt6MVkROP7E4qA3mnqcwJbdSohj+hIxMVam7iVmMoAWagDPyu6eQV0i5Z7cOK
5tY+h86DzQ0/Ldmxh4MneNV5tUlWunLOSDEZRhm7VqPuk3D0LWri39CnaDPyJqAh
aPvt6EGzAgMBAAECggEAJmekhANDuvp2c6NZSv4ooyIh2N2t74ZO9neyKQAQQoek
b4s8fw+7sdhovjVzPuHgB7y+0cAHFSkdV00hNgd75sw+Muz23kbLh3hdb3aak8ls
eKG5R15yktuzU1g3I3gCsHyGueeTs+TKwH/VHUD32hf2ys12Sa1tb4lSBET8SPt5
nQFqa0g+fvRp/pcWixUeg1Gul3CE7Fd35tKzzf68icN7ZH+1pSMZAeaspA5qhDPF
/wcEM698rSC45WoE4GAXl+ROAi+8bCLWfiBGFOyB0LmMRebgyIMxFBOmW8qSlxFt
3GXLMf9nfE/txPHlr0I2qS2z8ryT0eN3Hht2abl5MQKBgQD/wvvWraJ9lUFMmX+i
G9BgZvlO5BgD6HDfC3B7GiGzBEmMM1ieLsS1K0Q0Ol95hC76HdtvGcKu8P4fxExJ
nUvQLCW92MJLnxqRn5wfZ5A6ISVj95taGGn/EyCHGQD1A0CWocpHgmh5Vq7eC6iH
bsZYc4IfMFUL6iA3o5vhjx3znwKBgQD7+pVgiPijIjiTDIeXXpi8MEKmCzE4zplu
27sc7LYIbkbVWvYPAYZoLfNudqPgEWK8z+poDJAHuUjzZUWEzcdEyO1GFCbP8FvO
zXfGHvQhLpclYEb/OsljUtqgBWyF2wduvfASDP4OTDEd5Pl9saagQHK2N2gzzDrS
WpraOYMZbQKBgCQcPnxX9ZoviZGsFnYn4SrLPyXhVHawycbkEZR/4wQodc3irf9f
cQx3OGD7YOGCRTOxJXsxMuiKRAbuKys1ly+kHAwK35vXseOfmmZgs99RMLtFiVyW
F9kYtT39zMHLHMJnw2yHQALptzTIhpngjQaOAHAw3cEZ5ESWx/p3v23XAoGBAONU
YavkJx1WZGAWL8YarAUsLRUMh+3ORpLDXn5r+JaGlxUpqVBEefRHcJW6J4KhbMkX
c01H+DFfsjcUqLF1zU97TsWorJNxMALVUDfH+UxuciJgR+1AJiybtW4lNpFU19HL
PmmqmxJfHvjveT8zJTbyrgtC1ZnVqUPaRlaXCHXJAoGAMHAR24nZ9AXipjftm/xr
MqFkirdieb8Ve3qVOPrctkq0EgAFrcQhzaotzNOreTv4Xa128rdJy2Lju4v46LTQ
+FdITqmttP6uRvRXsjKqAFxiNcSCr+fL43Qyop9YUiA32O922/V4TywPqvJ0BB2u
8J2whJlB6cKDKa3XcbpRve8=
-----END PRIVATE KEY-----
"""
GOOGLE_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_AUDIENCES = frozenset({"https://oauth2.googleapis.com/token", "https://www.googleapis.com/oauth2/v4/token"})

#: The fault and request-log names of the vendor APIs.
VENDOR_IDS = {"openai": "vendor-openai", "azure": "vendor-azure", "anthropic": "vendor-anthropic",
              "bedrock": "vendor-bedrock", "gemini": "vendor-gemini", "vertex": "vendor-vertex"}
#: Models the OpenAI-compatible API serves (any other is OpenAI's model_not_found).
OPENAI_MODELS = frozenset({"gpt-4.1", "gpt-4.1-mini", "gpt-4o", "gpt-4o-mini", "gpt-5", "o3", "llama3.2",
                           "qwen2.5", "text-embedding-3-small", "text-embedding-3-large", "nomic-embed-text"})
ANTHROPIC_VERSIONS = frozenset({"2023-06-01", "2023-01-01"})
#: Keys the Messages API accepts beyond those Bedrock's invoke body has.
_ANTHROPIC_ONLY = frozenset({"model", "stream", "service_tier", "container", "mcp_servers"})
_SKEW = 5 * 60.0
# The handlers check the Azure api-version; the vendors' own APIs have none, so a recent one stands in.
_NO_API_VERSION = {"api-version": "2025-04-01-preview"}


def install(sim: Simulator) -> None:
    """
    Add the vendor routes to C{sim}'s Klein app.
    """
    app: Klein = sim.app

    @app.route("/v1/chat/completions", methods=["POST"])
    def openai_chat(request: IRequest) -> Any:
        return ensureDeferred(_openai(sim, request, "chat/completions"))

    @app.route("/v1/embeddings", methods=["POST"])
    def openai_embeddings(request: IRequest) -> Any:
        return ensureDeferred(_openai(sim, request, "embeddings"))

    @app.route("/openai/deployments/<name>/<path:rest>", methods=["POST"])
    def azure(request: IRequest, name: str, rest: str) -> Any:
        return ensureDeferred(_azure(sim, request, name, rest))

    @app.route("/v1/messages", methods=["POST"])
    def anthropic(request: IRequest) -> Any:
        return ensureDeferred(_anthropic(sim, request))

    @app.route("/model/<model_id>/<operation>", methods=["POST"])
    def bedrock(request: IRequest, model_id: str, operation: str) -> Any:
        return ensureDeferred(_bedrock(sim, request, operation))

    @app.route("/v1beta/models/<path:rest>", methods=["POST"])
    def gemini(request: IRequest, rest: str) -> Any:
        return ensureDeferred(_gemini(sim, request, rest))

    google_tokens: dict[str, float] = {}

    @app.route("/token", methods=["POST"])
    def google_token(request: IRequest) -> Any:
        return _google_token(sim, request, google_tokens)

    @app.route("/v1/projects/<project>/locations/<location>/publishers/google/models/<path:rest>", methods=["POST"])
    def vertex(request: IRequest, project: str, location: str, rest: str) -> Any:
        return ensureDeferred(_vertex(sim, request, rest, google_tokens))


def _body(sim: Simulator, request: IRequest, vendor: str) -> tuple[bytes, Any, bool, Mapping[str, str]]:
    raw = request.content.read() if request.content is not None else b""
    try:
        body, ok = (json.loads(raw), True) if raw else (None, True)
    except ValueError:
        body, ok = raw.decode("utf-8", "replace"), False
    path = request.path.decode("latin-1")
    query = sim._record(request, path, body)
    return raw, body, ok, query


def _reply(request: IRequest, reply: JsonReply) -> bytes:
    request.setResponseCode(reply.status)
    request.setHeader(b"content-type", reply.content_type.encode())
    for name, value in reply.headers.items():
        request.setHeader(name.encode(), value.encode())
    return reply.encoded()


def _header(request: IRequest, name: bytes) -> str | None:
    value = request.getHeader(name)
    return value.decode("latin-1") if value is not None else None


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


# OpenAI-compatible

def _openai_error(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                  param: str | None = None) -> JsonReply:
    return JsonReply(status, {"error": {"message": message, "type": type_, "param": param, "code": code}})


def _openai_errors(reply: JsonReply) -> JsonReply:
    # The handlers answer in Azure's words; OpenAI's own API uses the same envelope with a type.
    body: Mapping[str, Any] = reply.body if isinstance(reply.body, Mapping) else {}
    found = body.get("error")
    error: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    message = error.get("message") or "The server had an error while processing your request."
    type_ = "invalid_request_error" if reply.status < 500 and reply.status != 429 else (
        "rate_limit_error" if reply.status == 429 else "server_error")
    return JsonReply(reply.status, {"error": {"message": message, "type": type_, "param": error.get("param"),
                                              "code": error.get("code")}}, headers=reply.headers)


async def _openai(sim: Simulator, request: IRequest, operation: str) -> bytes:
    _, body, ok, _ = _body(sim, request, "openai")
    header = _header(request, b"authorization")
    if header is None:
        return _reply(request, _openai_error(401, "You didn't provide an API key. You need to provide your API key "
                                                  "in an Authorization header using Bearer auth (i.e. "
                                                  "Authorization: Bearer YOUR_KEY)."))
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not _same(key.strip(), OPENAI_KEY):
        return _reply(request, _openai_error(401, "Incorrect API key provided. You can find your API key at "
                                                  "https://platform.openai.com/account/api-keys.",
                                             code="invalid_api_key"))
    if not ok or not isinstance(body, Mapping):
        return _reply(request, _openai_error(400, "We could not parse the JSON body of your request."))
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _reply(request, _openai_error(400, "you must provide a model parameter"))
    if model not in OPENAI_MODELS:
        return _reply(request, _openai_error(404, f"The model `{model}` does not exist or you do not have access "
                                                  "to it.", code="model_not_found"))
    spec = DeploymentSpec("openai", model)
    return await sim.serve(request, VENDOR_IDS["openai"], spec, operation, body, _NO_API_VERSION,
                           render_error=_openai_errors)


# Azure OpenAI

async def _azure(sim: Simulator, request: IRequest, name: str, rest: str) -> bytes:
    _, body, ok, query = _body(sim, request, "azure")
    if not _same(_header(request, b"api-key"), AZURE_KEY):
        return _reply(request, JsonReply(401, {"error": {
            "code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make "
                                      "sure to provide a valid key for an active subscription and use a correct "
                                      "regional API endpoint for your resource."}}))
    if not ok:
        return _reply(request, openai_api.azure_error(400, "We could not parse the JSON body of your request.",
                                                      code="invalid_json"))
    return await sim.serve(request, VENDOR_IDS["azure"], DeploymentSpec("openai", name), rest, body, query)


# Anthropic

def _anthropic_error(status: int, type_: str, message: str, headers: Mapping[str, str] | None = None) -> JsonReply:
    return JsonReply(status, {"type": "error", "error": {"type": type_, "message": message}},
                     headers=dict(headers or {}))


def _anthropic_errors(reply: JsonReply) -> JsonReply:
    body = reply.body if isinstance(reply.body, Mapping) else {}
    message = str(body.get("message") or "Internal server error")
    message = message.removeprefix("The model returned the following errors: ")
    types = {400: "invalid_request_error", 429: "rate_limit_error", 500: "api_error", 503: "overloaded_error"}
    headers = {k: v for k, v in reply.headers.items() if k.lower() != "x-amzn-errortype"}
    status = 529 if reply.status == 503 else reply.status
    return _anthropic_error(status, types.get(reply.status, "api_error"), message, headers)


async def _anthropic(sim: Simulator, request: IRequest) -> bytes:
    _, body, ok, _ = _body(sim, request, "anthropic")
    key = _header(request, b"x-api-key")
    if key is None:
        return _reply(request, _anthropic_error(401, "authentication_error", "x-api-key header is required"))
    if not _same(key, ANTHROPIC_KEY):
        return _reply(request, _anthropic_error(401, "authentication_error", "invalid x-api-key"))
    version = _header(request, b"anthropic-version")
    if version is None:
        return _reply(request, _anthropic_error(400, "invalid_request_error", "anthropic-version: header is required"))
    if version not in ANTHROPIC_VERSIONS:
        return _reply(request, _anthropic_error(400, "invalid_request_error",
                                                f"anthropic-version: invalid version {version}"))
    if not ok or not isinstance(body, Mapping):
        return _reply(request, _anthropic_error(400, "invalid_request_error", "There was an issue with the format "
                                                "of your request: the body is not valid JSON"))
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _reply(request, _anthropic_error(400, "invalid_request_error", "model: Field required"))
    if "anthropic_version" in body or "anthropic_beta" in body:
        extra = "anthropic_version" if "anthropic_version" in body else "anthropic_beta"
        return _reply(request, _anthropic_error(400, "invalid_request_error", f"{extra}: Extra inputs are not permitted"))
    if "stream" in body and not isinstance(body["stream"], bool):
        return _reply(request, _anthropic_error(400, "invalid_request_error", "stream: Input should be a valid boolean"))
    if not model.startswith("claude-"):
        return _reply(request, _anthropic_error(404, "not_found_error", f"model: {model}"))
    # The same model behind Bedrock's invoke body: the Messages API's keys become Bedrock's.
    invoke = {k: v for k, v in body.items() if k not in _ANTHROPIC_ONLY}
    invoke["anthropic_version"] = anthropic_body.ANTHROPIC_VERSION
    betas = _header(request, b"anthropic-beta")
    if betas:
        invoke["anthropic_beta"] = [b.strip() for b in betas.split(",") if b.strip()]
    stream = bool(body.get("stream"))
    spec = DeploymentSpec("bedrock", model, bedrock_stream_framing="sse")
    return await sim.serve(request, VENDOR_IDS["anthropic"], spec,
                           "invoke-with-response-stream" if stream else "invoke", invoke, {},
                           render_error=_anthropic_errors)


# Bedrock runtime

def _aws_error(status: int, kind: str, message: str) -> JsonReply:
    return JsonReply(status, {"message": message},
                     headers={"x-amzn-ErrorType": kind + bedrock_api.ERROR_TYPE_SUFFIX})


def verify_sigv4(request: IRequest, raw: bytes, now: float) -> JsonReply | None:
    """
    Check the request's SigV4 signature as Bedrock does, recomputing it with botocore's own C{SigV4Auth}
    for the test key pair; None when it holds, else Bedrock's 403.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    header = _header(request, b"authorization")
    if header is None:
        return _aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    try:
        algorithm, _, rest = header.partition(" ")
        fields = dict(part.strip().split("=", 1) for part in rest.split(","))
        credential = fields["Credential"].split("/")
        access, day, region, service, terminal = credential
        signed = fields["SignedHeaders"].split(";")
        given = fields["Signature"]
    except (KeyError, ValueError):
        return _aws_error(400, "IncompleteSignatureException", "Authorization header requires 'Credential', "
                                                                "'Signature' and 'SignedHeaders' parameters.")
    if algorithm != "AWS4-HMAC-SHA256" or terminal != "aws4_request" or service != "bedrock":
        return _aws_error(403, "InvalidSignatureException", "Credential should be scoped to correct service: "
                                                            "'bedrock'.")
    if access != AWS_ACCESS_KEY:
        return _aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    token = _header(request, b"x-amz-security-token")
    if token is not None and token != AWS_SESSION_TOKEN:
        return _aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    stamp = _header(request, b"x-amz-date") or ""
    try:
        when = float(calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return _aws_error(403, "IncompleteSignatureException", "Date must be in ISO-8601 'basic format'.")
    if abs(when - now) > _SKEW:
        return _aws_error(403, "InvalidSignatureException", f"Signature expired: {stamp} is now earlier than the "
                                                            "allowed window (5 min.)")
    if "host" not in signed or "x-amz-date" not in signed or day != stamp[:8]:
        return _aws_error(403, "InvalidSignatureException", "The request signature we calculated does not match "
                                                            "the signature you provided.")
    headers = {name: _header(request, name.encode()) or "" for name in signed}
    url = "http://" + headers["host"] + request.uri.decode("latin-1")
    aws = AWSRequest(method=request.method.decode(), url=url, data=raw, headers=headers)
    aws.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(AWS_ACCESS_KEY, AWS_SECRET_KEY, token), "bedrock", region)
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    if not hmac.compare_digest(expected, given):
        return _aws_error(403, "InvalidSignatureException", "The request signature we calculated does not match the "
                                                            "signature you provided. Check your AWS Secret Access Key "
                                                            "and signing method. Consult the service documentation "
                                                            "for details.")
    return None


async def _bedrock(sim: Simulator, request: IRequest, operation: str) -> bytes:
    raw, body, ok, _ = _body(sim, request, "bedrock")
    refused = verify_sigv4(request, raw, sim.clock.seconds())
    if refused is not None:
        return _reply(request, refused)
    # The model id as sent (percent-encoded, e.g. anthropic.claude-...-v1%3A0), from the raw path.
    model_id = unquote(request.uri.decode("latin-1").split("?", 1)[0].split("/")[2])
    if operation not in ("invoke", "invoke-with-response-stream", "converse", "converse-stream"):
        return _reply(request, _aws_error(404, "UnknownOperationException", "Not Found"))
    if not ok:
        return _reply(request, bedrock_api.validation_error("Malformed input request, please reformat your input "
                                                             "and try again."))
    anthropic = "anthropic." in model_id
    if operation.startswith("invoke") and not anthropic:
        return _reply(request, bedrock_api.validation_error("The provided model identifier is invalid."))
    if operation.startswith("converse") and not anthropic:
        refused = _model_fields(model_id, body)
        if refused is not None:
            return _reply(request, refused)
    # Bedrock's own converse-stream frames ConverseStream events as event-stream messages (SAP AI Core: SSE).
    spec = DeploymentSpec("bedrock", model_id, converse_stream_framing="eventstream")
    return await sim.serve(request, VENDOR_IDS["bedrock"], spec, operation, body, {})


#: The C{additionalModelRequestFields} each non-Anthropic model family takes (Nova: its own inferenceConfig,
#: for topK); Anthropic's C{thinking} or C{top_k} there make Bedrock refuse the request.
_MODEL_FIELDS = {"amazon.nova": frozenset({"inferenceConfig"})}


def _model_fields(model_id: str, body: Any) -> JsonReply | None:
    extra = body.get("additionalModelRequestFields") if isinstance(body, Mapping) else None
    if not isinstance(extra, Mapping):
        return None
    allowed = next((keys for prefix, keys in _MODEL_FIELDS.items() if prefix in model_id), frozenset())
    for key in extra:
        if key not in allowed:
            return bedrock_api.validation_error(f"The model returned the following errors: Malformed input request: "
                                                f"extraneous key [{key}] is not permitted, please reformat your input "
                                                "and try again.")
    return None


# Gemini API

async def _gemini(sim: Simulator, request: IRequest, rest: str) -> bytes:
    _, body, ok, query = _body(sim, request, "gemini")
    key = _header(request, b"x-goog-api-key") or query.get("key")
    if key is None:
        return _reply(request, JsonReply(403, {"error": {
            "code": 403, "message": "Method doesn't allow unregistered callers (callers without established "
                                    "identity). Please use API Key or other form of API consumer identity to call "
                                    "this API.", "status": "PERMISSION_DENIED"}}))
    if not _same(key, GEMINI_KEY):
        return _reply(request, JsonReply(400, {"error": {
            "code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                         "domain": "googleapis.com"}]}}))
    model = rest.partition(":")[0]
    if not model.startswith("gemini-"):
        return _reply(request, JsonReply(404, {"error": {
            "code": 404, "message": f"models/{model} is not found for API version v1beta, or is not supported for "
                                    "generateContent. Call ListModels to see the list of available models and their "
                                    "supported methods.", "status": "NOT_FOUND"}}))
    if not ok:
        return _reply(request, vertex_api.invalid_argument("Invalid JSON payload received."))
    return await sim.serve(request, VENDOR_IDS["gemini"], DeploymentSpec("vertex", model), "models/" + rest, body,
                           query)


# Vertex AI with a service account

def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _oauth_error(status: int, error: str, description: str) -> JsonReply:
    return JsonReply(status, {"error": error, "error_description": description})


def _google_token(sim: Simulator, request: IRequest, tokens: dict[str, float]) -> bytes:
    """
    Google's OAuth token endpoint for the JWT-bearer grant a service account makes: the assertion's RS256
    signature, issuer, audience, scope and lifetime are checked as Google checks them.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    args: dict[bytes, list[bytes]] = getattr(request, "args", {}) or {}
    sim._record(request, "/token", {k.decode(): "..." if k == b"assertion" else [x.decode() for x in v]
                                    for k, v in args.items()})
    grant = (args.get(b"grant_type") or [b""])[0].decode()
    if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return _reply(request, _oauth_error(400, "unsupported_grant_type", "Invalid grant_type: " + grant))
    assertion = (args.get(b"assertion") or [b""])[0].decode()
    try:
        head, payload, signature = assertion.split(".")
        claims = json.loads(_b64url(payload))
        header = json.loads(_b64url(head))
        private = serialization.load_pem_private_key(GOOGLE_PRIVATE_KEY.encode(), None)
        assert isinstance(private, rsa.RSAPrivateKey)
        private.public_key().verify(_b64url(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(),
                                    hashes.SHA256())
    except (ValueError, InvalidSignature):
        return _reply(request, _oauth_error(400, "invalid_grant", "Invalid JWT Signature."))
    now = sim.clock.seconds()
    if header.get("alg") != "RS256" or claims.get("iss") != GOOGLE_SERVICE_ACCOUNT:
        return _reply(request, _oauth_error(400, "invalid_grant", "Invalid grant: account not found"))
    # Google's token endpoint accepts its own URL as the audience, wherever the request was sent.
    if claims.get("aud") not in GOOGLE_AUDIENCES:
        return _reply(request, _oauth_error(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token "
                                                                "(60 minutes) and in a reasonable timeframe."))
    if not isinstance(claims.get("exp"), int) or not claims["exp"] - 3700 <= now <= claims["exp"]:
        return _reply(request, _oauth_error(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token "
                                                                "(60 minutes) and in a reasonable timeframe."))
    if GOOGLE_SCOPE not in str(claims.get("scope", "")).split():
        return _reply(request, _oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience "
                                                                "provided."))
    token = "ya29.sim-" + secrets.token_urlsafe(32)
    tokens[token] = now + 3599
    return _reply(request, JsonReply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))


async def _vertex(sim: Simulator, request: IRequest, rest: str, tokens: dict[str, float]) -> bytes:
    _, body, ok, query = _body(sim, request, "vertex")
    header = _header(request, b"authorization") or ""
    scheme, _, token = header.partition(" ")
    expiry = tokens.get(token.strip()) if scheme.lower() == "bearer" else None
    if expiry is None or expiry <= sim.clock.seconds():
        return _reply(request, JsonReply(401, {"error": {
            "code": 401, "message": "Request had invalid authentication credentials. Expected OAuth 2 access "
                                    "token, login cookie or other valid authentication credential.",
            "status": "UNAUTHENTICATED"}}))
    if not ok:
        return _reply(request, vertex_api.invalid_argument("Invalid JSON payload received."))
    model = rest.partition(":")[0]
    return await sim.serve(request, VENDOR_IDS["vertex"], DeploymentSpec("vertex", model), "models/" + rest, body,
                           query)
