"""The model calls, on a tuned model's endpoint and on a publisher (base) model:
generateContent, streamGenerateContent (server-sent events with ?alt=sse, else a JSON array),
countTokens and computeTokens.

What the local model cannot honour (tools, function calling, structured output, safety
settings, cached content) is refused with a 400 that says so: nothing is silently ignored.
"""

from __future__ import annotations

import base64
import secrets

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from include.local_vertex.base_models import canonical_base_model, local_base_model
from include.local_vertex.checkpoints import adapter_dir as checkpoint_adapter
from include.local_vertex.checkpoints import split_endpoint_id
from include.local_vertex.errors import ApiError, invalid_argument, not_found
from include.local_vertex.generation import ModelResolver
from include.local_vertex.routes.context import PARENT, Service
from include.local_vertex.timefmt import now_rfc3339
from include.local_vertex.wire import fields_of, json_response, read_request, request_body

# What each call honours; any other field of Google's schema is refused as not supported here.
_SUPPORTED = {
    "GenerateContentRequest": {"contents", "systemInstruction", "generationConfig", "labels"},
    "CountTokensRequest": {"contents", "systemInstruction", "generationConfig", "model"},
    "ComputeTokensRequest": {"contents", "model"},
}
_GENERATION_CONFIG = {"temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "seed", "candidateCount"}
_WHY = {"tools": "tools and function calling", "toolConfig": "function calling",
        "responseSchema": "structured output (responseSchema)",
        "responseJsonSchema": "structured output (responseJsonSchema)"}


def router(service: Service) -> APIRouter:
    routes = APIRouter()

    def on_endpoint(project: str, location: str, endpoint_id: str) -> ModelResolver:
        """The main endpoint serves the default checkpoint once the job succeeded; a checkpoint's
        own endpoint serves it as soon as it is listed."""
        name = f"projects/{project}/locations/{location}/endpoints/{endpoint_id}"
        job_id, checkpoint_id = split_endpoint_id(endpoint_id, lambda i: service.store.get(i) is not None)
        try:
            record = service.find_job(project, location, job_id, "endpoints")
        except ApiError:
            raise not_found(f"{name} not found") from None
        adapter_dir = checkpoint_adapter(record, checkpoint_id)
        if adapter_dir is None or (checkpoint_id is None and record.state != "JOB_STATE_SUCCEEDED"):
            raise not_found(f"{name} not found (its tuning job is {record.state})")
        base_model = record.internal["resolvedBaseModel"]
        return lambda: (base_model, adapter_dir)

    def on_publisher_model(project: str, location: str, model: str) -> ModelResolver:
        canonical_base_model(model)
        return lambda: (local_base_model(model, service.config), None)

    targets = {
        PARENT + "/endpoints/{endpoint_id}": on_endpoint,
        PARENT + "/publishers/google/models/{model}": on_publisher_model,
    }
    for target, resolver in targets.items():
        _add_calls(routes, service, target, resolver)
    return routes


def _add_calls(routes: APIRouter, service: Service, target: str, resolver) -> None:
    """The four model calls on one kind of target; `resolver` takes the target's path parameters."""
    generation = service.generation
    model = Depends(resolver)

    async def generate_content(request: Request, resolve: ModelResolver = model):
        body = await _model_request(request, "GenerateContentRequest")
        answer = await generation.generate(resolve, body)
        return json_response({**answer, **_answer_identity()})

    async def stream_generate_content(request: Request, resolve: ModelResolver = model,
                                      alt: str | None = Query(None)):
        body = await _model_request(request, "GenerateContentRequest")
        if alt not in (None, "json", "sse"):
            raise invalid_argument(f"alt must be 'sse' or 'json', got {alt!r}")
        pieces = generation.stream(resolve, body)
        first = await anext(pieces)  # a bad request fails here, with a normal error answer
        return StreamingResponse(_stream_body(first, pieces, sse=alt == "sse"),
                                 media_type="text/event-stream" if alt == "sse" else "application/json")

    async def count_tokens(request: Request, resolve: ModelResolver = model):
        body = await _model_request(request, "CountTokensRequest")
        total = await generation.count_tokens(resolve, body)
        return json_response({"totalTokens": total,
                              "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]})

    async def compute_tokens(request: Request, resolve: ModelResolver = model):
        body = await _model_request(request, "ComputeTokensRequest")
        infos = await generation.compute_tokens(resolve, body)
        return json_response({"tokensInfo": [
            {"role": info["role"], "tokenIds": [str(token) for token in info["token_ids"]],
             "tokens": [base64.b64encode(token).decode() for token in info["tokens"]]}
            for info in infos]})

    for method, handler, message in (
            ("generateContent", generate_content, "GenerateContentRequest"),
            ("streamGenerateContent", stream_generate_content, "GenerateContentRequest"),
            ("countTokens", count_tokens, "CountTokensRequest"),
            ("computeTokens", compute_tokens, "ComputeTokensRequest")):
        routes.add_api_route(f"{target}:{method}", handler, methods=["POST"], openapi_extra=request_body(message))


async def _model_request(request: Request, message: str) -> dict:
    body = await read_request(request, message)
    _refuse_unsupported(body, fields_of(message), _SUPPORTED[message], "")
    config = body.get("generationConfig")
    if config is not None:
        if not isinstance(config, dict):
            raise invalid_argument("generationConfig must be an object")
        _refuse_unsupported(config, fields_of("GenerationConfig"), _GENERATION_CONFIG, "generationConfig.")
    if not body.get("contents"):
        raise invalid_argument("contents is required: a list of {role, parts: [{text}]}")
    return body


def _refuse_unsupported(body: dict, known: frozenset[str], supported: set[str], prefix: str) -> None:
    for name in body:
        if name in supported:
            continue
        if name in known:
            what = _WHY.get(name, f"{prefix}{name}")
            raise invalid_argument(f"{what} is not supported by the local service (field {prefix}{name})")
        raise invalid_argument(f"Invalid JSON payload received. Unknown name \"{prefix}{name}\"")


def _answer_identity() -> dict:
    """What Vertex stamps on every answer: an id of its own and when it was made."""
    return {"responseId": secrets.token_urlsafe(16), "createTime": now_rfc3339()}


async def _stream_body(first, rest, *, sse: bool):
    """GenerateContentResponse chunks: text pieces, then the usage and finish reason."""
    identity = _answer_identity()

    def chunk(piece) -> dict:
        if isinstance(piece, str):
            return {"candidates": [{"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}],
                    **identity}
        last = piece["candidates"][0]
        return {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]},
                                "finishReason": last["finishReason"], "index": 0}],
                "usageMetadata": piece["usageMetadata"], "modelVersion": piece["modelVersion"], **identity}

    def frame(body: dict, index: int) -> bytes:
        data = orjson.dumps(body)
        if sse:
            return b"data: " + data + b"\r\n\r\n"
        return (b"[" if index == 0 else b",\r\n") + data

    index = 0
    yield frame(chunk(first), index)
    try:
        async for piece in rest:
            index += 1
            yield frame(chunk(piece), index)
    except ApiError as exc:  # the answer has begun: the error becomes the last chunk, as Vertex does
        yield frame(exc.body(), index + 1)
    if not sse:
        yield b"]"
