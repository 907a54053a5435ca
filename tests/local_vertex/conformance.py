"""Fidelity checks against Google's own definitions of the API, for the conformance test.

Two referees: the REST schema Google ships with google-api-python-client (the `aiplatform.v1`
discovery document: every field must exist, with its JSON type: int64 as a string, enum values
from the list), and the protobuf types of google-cloud-aiplatform (the body must parse strictly,
unknown fields refused).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import orjson

from include.local_vertex.wire import discovery_document

# Served by the local service but not by Vertex: the run's series in one read (same answer type).
LOCAL_EXTENSIONS = {
    ("GET", "v1/projects/{projectsId}/locations/{locationsId}/tensorboards/{tensorboardsId}/experiments/"
            "{experimentsId}/runs/{runsId}/timeSeries:batchRead"):
        "GoogleCloudAiplatformV1BatchReadTensorboardTimeSeriesDataResponse",
}
ERROR_FIELDS = {"code", "message", "status", "details"}


@dataclass(frozen=True)
class Method:
    id: str
    http_method: str
    flat_path: str
    request: str | None  # discovery schema id of the body
    response: str | None
    query: frozenset[str]


@cache
def methods() -> list[Method]:
    found = []

    def walk(resource):
        for method in resource.get("methods", {}).values():
            found.append(Method(method["id"], method["httpMethod"], method["flatPath"],
                                method.get("request", {}).get("$ref"), method.get("response", {}).get("$ref"),
                                frozenset(name for name, p in method.get("parameters", {}).items()
                                          if p.get("location") == "query")))
        for child in resource.get("resources", {}).values():
            walk(child)

    walk(discovery_document())
    for (http_method, flat_path), response in LOCAL_EXTENSIONS.items():
        found.append(Method("local." + flat_path.rsplit("/", 1)[-1], http_method, flat_path, None, response,
                            frozenset({"timeSeries"})))
    return found


def path_pattern(template: str) -> re.Pattern:
    """A regex for a path template ({name} is one segment, without a ':' verb)."""
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("^" + "".join("[^/:]+" if part.startswith("{") else re.escape(part) for part in parts) + "$")


@cache
def _method_patterns():
    return [(path_pattern(method.flat_path), method) for method in methods()]


def method_for(http_method: str, path: str) -> Method:
    """Google's method for a request path of either API version."""
    path = re.sub(r"^/?v1beta1/", "v1/", path.lstrip("/"))
    matches = [m for pattern, m in _method_patterns() if m.http_method == http_method and pattern.match(path)]
    assert len(matches) == 1, f"{http_method} {path}: matches {[m.id for m in matches]} of Google's methods"
    return matches[0]


def schema_problems(value, field: dict, where: str = "", *, request: bool = False) -> list[str]:
    """Where `value` breaks the discovery schema `field` (a property or {"$ref": ...}).

    Answers must write int64 as strings; in a request Google's parsers also take a JSON number."""
    schemas = discovery_document()["schemas"]
    if "$ref" in field:
        schema = schemas[field["$ref"]]
        if schema.get("type") != "object" or "properties" not in schema:
            return schema_problems(value, schema, where, request=request)
        if not isinstance(value, dict):
            return [f"{where or '.'}: expected an object ({field['$ref']}), got {value!r:.60}"]
        problems = []
        for key, item in value.items():
            prop = schema["properties"].get(key)
            if prop is None:
                problems.append(f"{where}.{key}: no such field in {field['$ref']}")
            else:
                problems += schema_problems(item, prop, f"{where}.{key}", request=request)
        return problems
    kind, fmt = field.get("type"), field.get("format")
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {value!r:.60}"]
        return [p for i, item in enumerate(value)
                for p in schema_problems(item, field["items"], f"{where}[{i}]", request=request)]
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {value!r:.60}"]
        inner = field.get("additionalProperties")
        return [p for key, item in value.items()
                for p in (schema_problems(item, inner, f"{where}.{key}", request=request) if inner else [])]
    if kind == "string":
        if request and fmt in ("int64", "uint64") and isinstance(value, int) and not isinstance(value, bool):
            return []
        if not isinstance(value, str):
            return [f"{where}: expected a string ({fmt or 'string'}), got {value!r:.60}"]
        if "enum" in field and value not in field["enum"]:
            return [f"{where}: {value!r} is not one of {field['enum']}"]
        if fmt in ("int64", "uint64") and not re.fullmatch(r"-?[0-9]+", value):
            return [f"{where}: {value!r} is not an int64 string"]
        if fmt == "google-datetime" and not _is_rfc3339(value):
            return [f"{where}: {value!r} is not an RFC 3339 time"]
        if fmt == "byte" and not _is_base64(value):
            return [f"{where}: {value!r} is not base64"]
        return []
    if kind == "integer":
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{where}: expected an integer, got {value!r:.60}"]
    if kind == "number":
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [f"{where}: expected a number, got {value!r:.60}"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: expected true or false, got {value!r:.60}"]
    return []  # "any"


def proto_problems(value, schema_id: str) -> list[str]:
    """Where strict protobuf JSON parsing into google-cloud-aiplatform's type refuses `value`."""
    from google.protobuf import empty_pb2, json_format

    text = orjson.dumps(value).decode()
    try:
        if schema_id == "GoogleProtobufEmpty":
            json_format.Parse(text, empty_pb2.Empty(), ignore_unknown_fields=False)
        else:
            from google.cloud import aiplatform_v1

            getattr(aiplatform_v1, schema_id.removeprefix("GoogleCloudAiplatformV1")).from_json(
                text, ignore_unknown_fields=False)
    except Exception as exc:  # json_format.ParseError and the proto-plus wrappers of it
        return [f"{schema_id}: {exc}"]
    return []


def message_problems(value, schema_id: str, *, request: bool = False) -> list[str]:
    return schema_problems(value, {"$ref": schema_id}, request=request) + proto_problems(value, schema_id)


def error_problems(body, http_code: int) -> list[str]:
    """Google's error shape: {"error": {code (the HTTP status), message, status (a google.rpc.Code)}}."""
    from google.rpc import code_pb2

    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return [f"not Google's error shape: {body!r:.100}"]
    error = body["error"]
    problems = [f"unknown error field {key}" for key in set(error) - ERROR_FIELDS]
    if error.get("code") != http_code:
        problems.append(f"error.code {error.get('code')!r} is not the HTTP status {http_code}")
    if not isinstance(error.get("message"), str) or not error["message"]:
        problems.append("error.message is missing")
    if error.get("status") not in code_pb2.Code.keys():
        problems.append(f"error.status {error.get('status')!r} is not a google.rpc.Code")
    return problems


def answer_problems(http_method: str, path: str, status: int, content: bytes, content_type: str) -> tuple[str, list[str]]:
    """(what was checked, the problems) for one answer of the local service."""
    if status >= 300:
        return "error", error_problems(orjson.loads(content), status)
    method = method_for(http_method, path)
    if content_type.startswith("text/event-stream"):
        chunks = [orjson.loads(line[len(b"data: "):]) for line in content.split(b"\r\n") if line.startswith(b"data: ")]
    elif method.id.endswith("streamGenerateContent"):
        chunks = orjson.loads(content)
    else:
        return method.response, message_problems(orjson.loads(content), method.response)
    return method.response, [p for chunk in chunks for p in message_problems(chunk, method.response)] or \
        ([] if chunks else ["no chunks in the stream"])


def request_problems(http_method: str, path: str, query: dict, body) -> tuple[str, list[str]]:
    """(Google's method, the problems) for one request a client sent."""
    method = method_for(http_method, path)
    problems = [f"{method.id}: query parameter {name!r} is not Google's" for name in set(query) - method.query]
    if body is not None:
        problems += message_problems(body, method.request, request=True) if method.request else [f"{method.id} takes no body"]
    return method.id, problems


def _is_rfc3339(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return text.endswith("Z") or bool(re.search(r"[+-][0-9]{2}:[0-9]{2}$", text))


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return True
