"""The calls real clients make on a model, on a tuned endpoint and on a publisher model:
countTokens, computeTokens, streamGenerateContent (SSE and JSON array), the answer's identity
fields, and the features the local model cannot honour refused by name."""

from __future__ import annotations

import base64

import orjson
import pytest

from tests.fixtures.local_vertex import chat_rows

pytestmark = pytest.mark.slow

PROMPT = {"contents": [{"role": "user", "parts": [{"text": "message 3: my account question"}]}],
          "systemInstruction": {"parts": [{"text": "Classify the message."}]},
          "generationConfig": {"temperature": 0, "maxOutputTokens": 6}}


@pytest.fixture(scope="module")
def http(local_vertex):
    with local_vertex.http() as client:
        yield client


@pytest.fixture(scope="module")
def endpoint(local_vertex, http):
    uri = local_vertex.write_dataset("calls-train.jsonl", chat_rows(8))
    job = http.post(f"/v1/{local_vertex.parent}/tuningJobs", json={
        "baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {
            "trainingDatasetUri": uri, "hyperParameters": {"epochCount": 1}}}).json()
    job = local_vertex.wait_for_state(job["name"], {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"})
    assert job["state"] == "JOB_STATE_SUCCEEDED", job.get("error")
    return job["tunedModel"]["endpoint"]


@pytest.fixture(scope="module", params=["endpoint", "publisher"])
def model(request, local_vertex, endpoint):
    return endpoint if request.param == "endpoint" else f"{local_vertex.parent}/publishers/google/models/gemini-2.5-flash"


def test_count_tokens_is_the_prompt_token_count_of_generate(http, model):
    answer = http.post(f"/v1/{model}:generateContent", json=PROMPT).json()
    counted = http.post(f"/v1/{model}:countTokens", json={k: PROMPT[k] for k in ("contents", "systemInstruction")})
    assert counted.status_code == 200, counted.text
    assert counted.json()["totalTokens"] == answer["usageMetadata"]["promptTokenCount"] > 0
    for field in ("responseId", "modelVersion", "createTime"):
        assert answer[field]
    assert answer["createTime"].endswith("Z")


def test_compute_tokens_gives_each_contents_ids_and_bytes(http, model):
    text = "message 3: my account question"
    response = http.post(f"/v1/{model}:computeTokens", json={"contents": [{"role": "user", "parts": [{"text": text}]}]})
    assert response.status_code == 200, response.text
    (info,) = response.json()["tokensInfo"]
    assert info["role"] == "user" and all(token_id.isdigit() for token_id in info["tokenIds"])
    assert b"".join(base64.b64decode(token) for token in info["tokens"]).decode() == text


def test_stream_as_server_sent_events_and_as_a_json_array_matches_generate(http, model):
    whole = http.post(f"/v1/{model}:generateContent", json=PROMPT).json()
    text = whole["candidates"][0]["content"]["parts"][0]["text"]
    with http.stream("POST", f"/v1/{model}:streamGenerateContent", params={"alt": "sse"}, json=PROMPT) as sse:
        assert sse.status_code == 200 and sse.headers["content-type"].startswith("text/event-stream")
        events = [orjson.loads(line[len("data: "):]) for line in sse.iter_lines() if line.startswith("data: ")]
    array = http.post(f"/v1/{model}:streamGenerateContent", json=PROMPT)
    assert array.status_code == 200 and array.headers["content-type"] == "application/json"
    assert text and whole["usageMetadata"]["candidatesTokenCount"] > 1
    for chunks in (events, array.json()):
        assert len(chunks) > 2  # the text arrives in pieces, then the finish reason and usage
        assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == text
        assert chunks[-1]["candidates"][0]["finishReason"] == whole["candidates"][0]["finishReason"]
        assert chunks[-1]["usageMetadata"] == whole["usageMetadata"]
        assert len({c["responseId"] for c in chunks}) == 1


def test_google_genai_generate_content_stream(local_vertex, endpoint):
    from google.genai import types

    client = local_vertex.genai_client()
    config = types.GenerateContentConfig(temperature=0, max_output_tokens=6,
                                         system_instruction="Classify the message.")
    whole = client.models.generate_content(model=endpoint, contents="message 3: my account question", config=config)
    pieces = list(client.models.generate_content_stream(model=endpoint, contents="message 3: my account question",
                                                        config=config))
    assert "".join(piece.text or "" for piece in pieces) == whole.text
    assert pieces[-1].usage_metadata.total_token_count == whole.usage_metadata.total_token_count
    assert client.models.count_tokens(model=endpoint, contents="hello").total_tokens > 0
    assert client.models.compute_tokens(model=endpoint, contents="hello").tokens_info[0].token_ids


@pytest.mark.parametrize("extra, words", [
    ({"tools": [{"functionDeclarations": [{"name": "f"}]}]}, "tools and function calling is not supported"),
    ({"toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}, "function calling is not supported"),
    ({"generationConfig": {"responseSchema": {"type": "OBJECT"}}}, "structured output (responseSchema)"),
    ({"generation_config": {"response_mime_type": "application/json"}}, "generationConfig.responseMimeType"),
    ({"safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]}, "safetySettings"),
    ({"colour": "red"}, 'Unknown name "colour"'),
])
def test_what_the_local_model_cannot_honour_is_refused_by_name(http, endpoint, extra, words):
    for method in ("generateContent", "streamGenerateContent"):
        response = http.post(f"/v1/{endpoint}:{method}", json={"contents": PROMPT["contents"], **extra})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["status"] == "INVALID_ARGUMENT" and words in response.json()["error"]["message"]


def test_bad_model_calls_have_the_google_error_shape(http, local_vertex, endpoint):
    missing = http.post(f"/v1/{local_vertex.parent}/endpoints/999:countTokens", json=PROMPT)
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    many = http.post(f"/v1/{endpoint}:streamGenerateContent",
                     json={**PROMPT, "generationConfig": {"candidateCount": 2}})
    assert many.status_code == 400 and "candidateCount" in many.json()["error"]["message"]
    empty = http.post(f"/v1/{endpoint}:computeTokens", json={})
    assert empty.status_code == 400 and "contents is required" in empty.json()["error"]["message"]
