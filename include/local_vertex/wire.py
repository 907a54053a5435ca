"""Request and answer bodies as Google's JSON mapping of protobuf reads and writes them.

Google's parser is lenient where a strict JSON reading is not: a field may be written in
camelCase or snake_case, a repeated field may be given a single object (the guide's own
generateContent body sends `"parts": {"text": ...}`), an enum value may be written in any case,
and so may a Content's role (the guide sends "USER"). Every request body goes through
:func:`read_request` once, driven by the REST schema Google ships with google-api-python-client
(the `aiplatform.v1` discovery document), so handlers only ever see camelCase and lists.
Label keys and values are the user's data and are left as written.
"""

from __future__ import annotations

import functools
import os

import orjson
from fastapi import Request
from fastapi.responses import Response

from include.local_vertex.errors import invalid_argument

SCHEMA_PREFIX = "GoogleCloudAiplatformV1"
MAX_DEPTH = 100  # protobuf's own limit on nested messages when it parses JSON


def json_response(body: dict | list, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


@functools.cache
def discovery_document() -> dict:
    """The aiplatform v1 REST schema shipped with google-api-python-client."""
    import googleapiclient

    path = os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents",
                        "aiplatform.v1.json")
    with open(path, "rb") as handle:
        return orjson.loads(handle.read())


def schema(name: str) -> dict:
    """A message's schema by its short name ("TuningJob") or its full discovery id."""
    schemas = discovery_document()["schemas"]
    return schemas.get(name) or schemas[SCHEMA_PREFIX + name]


def fields_of(name: str) -> frozenset[str]:
    """The camelCase field names Google's schema gives a message."""
    return frozenset(schema(name).get("properties", {}))


async def read_request(request: Request, message: str, *, allow_empty: bool = False) -> dict:
    """The body of `request` parsed as the message `message`, in canonical form (see module doc)."""
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return {}
        raise invalid_argument("the request body is empty; a JSON object is expected")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_argument(f"Invalid JSON payload received. {exc}") from None
    if not isinstance(body, dict):
        raise invalid_argument(f"Invalid JSON payload received: the body must be a JSON object (a {message})")
    return canonical(body, message)


def canonical(body: dict, message: str) -> dict:
    """`body` with camelCase keys, lists for repeated fields and enum values as Google spells them."""
    return _message(body, schema(message), 0)


def request_body(message: str, *, required: bool = True) -> dict:
    """A route's `openapi_extra`: its body documented as Google's schema of `message` (three levels deep)."""
    return {"requestBody": {"required": required, "content": {"application/json": {
        "schema": _json_schema({"$ref": SCHEMA_PREFIX + message}, depth=3)}}}}


def _json_schema(field: dict, depth: int) -> dict:
    """A discovery-document field as JSON Schema; messages below `depth` become plain objects."""
    if "$ref" in field:
        properties = schema(field["$ref"]).get("properties", {})
        if depth == 0 or not properties:
            return {"type": "object"}
        return {"type": "object", "properties": {name: _json_schema(prop, depth - 1) for name, prop in properties.items()}}
    kind = field.get("type")
    if kind == "array":
        return {"type": "array", "items": _json_schema(field["items"], depth)}
    if kind == "object":
        inner = field.get("additionalProperties")
        return {"type": "object", **({"additionalProperties": _json_schema(inner, depth)} if inner else {})}
    if kind == "string" and "enum" in field:
        return {"type": "string", "enum": field["enum"]}
    return {"type": kind} if kind in ("string", "integer", "number", "boolean") else {}


def camel_case(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _message(body, message_schema: dict, depth: int):
    if not isinstance(body, dict):
        return body  # the handler's validation names what is wrong
    if depth > MAX_DEPTH:
        raise invalid_argument(f"Invalid JSON payload received: messages nest deeper than {MAX_DEPTH} levels")
    properties = message_schema.get("properties", {})
    converted = {}
    for key, value in body.items():
        name = camel_case(key) if isinstance(key, str) else key
        field = properties.get(name)
        converted[name] = value if field is None else _value(value, field, depth + 1)
        if name == "role" and message_schema.get("id") == SCHEMA_PREFIX + "Content" and isinstance(value, str):
            converted[name] = value.lower()  # Google reads "USER" as "user"
    return converted


def _value(value, field: dict, depth: int):
    if field.get("type") == "array":
        if value is None:
            return value
        items = value if isinstance(value, list) else [value]  # one object for a repeated field
        return [_value(item, field["items"], depth) for item in items]
    if "$ref" in field:
        return _message(value, schema(field["$ref"]), depth)
    if "enum" in field and isinstance(value, str):
        spelled = {option.upper(): option for option in field["enum"]}
        return spelled.get(value.upper(), value)
    if field.get("type") == "object" and isinstance(field.get("additionalProperties"), dict) \
            and "$ref" in field["additionalProperties"] and isinstance(value, dict):
        inner = schema(field["additionalProperties"]["$ref"])
        return {key: _message(item, inner, depth) for key, item in value.items()}
    return value  # scalars, and maps of user data such as labels
