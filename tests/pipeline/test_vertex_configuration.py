"""The pipeline with its connection set to Vertex AI: the requests it sends to Vertex, recorded.

The `gemini_tuning_default` connection gets the production shape (a service-account key, project
and location, no base_url, no token). google-genai then builds Vertex URLs and Google bearer
tokens exactly as in production; GOOGLE_VERTEX_BASE_URL (honoured by google-genai when the client
has no base_url) sends those requests to a recording proxy, which forwards them to the local
service so the run really tunes and generates. Only Google's cloud itself is stood in for, in
the Airflow subprocess (vertex_standins/sitecustomize.py): its token endpoint and Vertex
Experiments. Storage stays on the local service's emulator: this test is about the Vertex API.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gemini_tuning.jobs import label_value
from gemini_tuning.models import DEFAULT_BASE_MODEL
from tests.pipeline.conftest import DAG_ID, PipelineEnv, airflow_dags_test
from tests.pipeline.test_pipeline_dag import SMALL_RUN

pytestmark = pytest.mark.slow

STANDINS = Path(__file__).resolve().parent / "vertex_standins"
PROJECT = "vertex-test-project"
LOCATION = "europe-west4"
PARENT = f"/v1/projects/{PROJECT}/locations/{LOCATION}"
GOOGLE_ACCESS_TOKEN = "ya29.stand-in-google-access-token"
GENERATION = {"temperature": 0.3, "top_p": 0.9, "top_k": 20}
CONF = {
    **SMALL_RUN,
    **GENERATION,
    # The DAG's `region` param, not the connection's location, chooses where jobs run.
    "region": LOCATION,
    "tuned_model_display_name": "vertex-configuration-check",
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: object  # parsed JSON, or None


class RecordingProxy:
    """Keeps a copy of every request (up to `max_requests`) and forwards it to the local service."""

    HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
                  "date", "server"}

    def __init__(self, target: str, target_token: str, max_requests: int = 10_000):
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        forward = httpx.Client(base_url=target, timeout=120)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 120  # a stuck client cannot hold a thread forever

            def handle_one_request_of_any_method(self):
                url = urlsplit(self.path)
                if "chunked" in self.headers.get("Transfer-Encoding", ""):
                    proxy.errors.append(f"{self.command} {url.path}: chunked request bodies are not supported")
                    self.send_error(501, "chunked request bodies are not supported by the recording proxy")
                    return
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if len(proxy.requests) < max_requests:
                    proxy.requests.append(RecordedRequest(
                        self.command, url.path, parse_qs(url.query),
                        {name.lower(): value for name, value in self.headers.items()},
                        json.loads(raw) if raw else None))
                headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
                # Vertex would check the Google token recorded above; the local service checks its own.
                headers["Authorization"] = f"Bearer {target_token}"
                try:
                    answer = forward.request(self.command, self.path, headers=headers, content=raw)
                except httpx.HTTPError as error:
                    proxy.errors.append(f"{self.command} {url.path}: {error!r}")
                    self.send_error(502, f"local service unreachable: {error!r}")
                    return
                self.send_response(answer.status_code)
                for name, value in answer.headers.multi_items():
                    if name.lower() not in RecordingProxy.HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PATCH = do_DELETE = handle_one_request_of_any_method

            def log_message(self, format, *args):  # the requests are recorded, not logged
                pass

        self._forward = forward
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="recording-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "RecordingProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._forward.close()


def service_account_key() -> dict:
    """A service-account key file's content, with a fresh RSA key (Google never sees it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    email = f"airflow-tuning@{PROJECT}.iam.gserviceaccount.com"
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
    }


@pytest.fixture
def vertex_run(pipeline_env, local_vertex, tmp_path):
    """Runs the DAG once with the Vertex configuration; yields (result, proxy, stand-in calls, its PipelineEnv)."""
    connection = {
        "conn_type": "google_cloud_platform",
        "extra": {"project": PROJECT, "location": LOCATION, "keyfile_dict": json.dumps(service_account_key())},
    }
    calls = tmp_path / "standin-calls.jsonl"
    with RecordingProxy(local_vertex.base_url, local_vertex.token) as proxy:
        pipeline = PipelineEnv(
            env={
                **pipeline_env.env,  # storage, Variables and google_cloud_default stay on the emulator
                "AIRFLOW_CONN_GEMINI_TUNING_DEFAULT": json.dumps(connection),
                "AIRFLOW_VAR_GEMINI_TUNING_ARCHIVE_URI": (tmp_path / "archive").as_uri(),
                "GOOGLE_VERTEX_BASE_URL": proxy.url,
                "VERTEX_STANDIN_ACCESS_TOKEN": GOOGLE_ACCESS_TOKEN,
                "VERTEX_STANDIN_SERIES_URL": local_vertex.base_url,
                "VERTEX_STANDIN_SERIES_TOKEN": local_vertex.token,
                "VERTEX_STANDIN_CALLS": str(calls),
            },
            archive_root=tmp_path / "archive",
            airflow_home=tmp_path / "airflow_home",
        )
        pipeline.airflow_home.mkdir()
        pipeline.archive_root.mkdir()
        result = airflow_dags_test(pipeline, CONF, python_path=[STANDINS])
    output = result.stdout + result.stderr
    (pipeline.airflow_home / "dags-test.log").write_text(output)
    standin_calls = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    yield result, proxy, standin_calls, pipeline


def test_vertex_configuration_sends_vertex_requests_with_google_credentials(vertex_run):
    result, proxy, standin_calls, pipeline = vertex_run
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert not proxy.errors
    requests = proxy.requests
    seen = [f"{r.method} {r.path}" for r in requests]

    # Every request went to Vertex's paths for the connection's project and the run's region,
    # with the token Google's token endpoint handed the service-account key.
    assert requests, "the pipeline sent nothing to GOOGLE_VERTEX_BASE_URL"
    assert all(r.path.startswith(PARENT + "/") for r in requests), seen
    assert {r.headers.get("authorization") for r in requests} == {f"Bearer {GOOGLE_ACCESS_TOKEN}"}
    assert not [r for r in requests if "/tensorboards/" in r.path], "metrics must be read through aiplatform"

    # One tuning job created, with the recommended configuration and the run's labels.
    [create] = [r for r in requests if r.method == "POST" and r.path == PARENT + "/tuningJobs"]
    body = create.body
    spec = body["supervisedTuningSpec"]
    assert body["baseModel"] == DEFAULT_BASE_MODEL
    assert body["tunedModelDisplayName"] == CONF["tuned_model_display_name"]
    assert spec["trainingDatasetUri"].startswith("gs://")
    assert spec["validationDatasetUri"].startswith("gs://")
    assert int(spec["hyperParameters"]["epochCount"]) == 2  # recommended for the sample data
    labels = body["labels"]
    assert labels["airflow_dag_id"] == DAG_ID
    assert labels["airflow_task_id"] == label_value("create_tuning_job-0")
    assert re.fullmatch(r"[0-9a-f]{20}", labels["airflow_run_hash"])
    # Before creating it, the task looked for a job of this run to reuse, by those labels.
    [listing] = [r for r in requests if r.method == "GET" and r.path == PARENT + "/tuningJobs"]
    assert requests.index(listing) < requests.index(create)
    assert all(f'labels.{key}="{value}"' in listing.query["filter"][0] for key, value in labels.items())

    # The job was polled by the name Vertex gave it.
    [summary] = [json.loads(p.read_text()) for p in pipeline.archive_root.glob(f"{DAG_ID}/*/summary.json")]
    job_path = "/v1/" + summary["job"]["name"]
    assert job_path.startswith(PARENT + "/tuningJobs/")
    assert [r for r in requests if r.method == "GET" and r.path == job_path], seen
    job_id = job_path.rsplit("/", 1)[-1]
    console = f"locations/{LOCATION}/tuning/tuningJob/{job_id}?project={PROJECT}"
    assert "https://console.cloud.google.com/vertex-ai/generative/language/" + console in output

    # The chosen checkpoint became the model's default through google-genai's model update (a PATCH
    # of the Model with its defaultCheckpointId), and its own endpoint was smoke-tested.
    champion = summary["run_summary"]["champion"]
    [update] = [r for r in requests if r.method == "PATCH"]
    assert update.path == f"/v1/{summary['job']['tunedModel']['model']}" and update.path.startswith(PARENT + "/models/")
    assert update.body == {"defaultCheckpointId": champion["checkpoint_id"]}
    assert champion["endpoint"] in {c["endpoint"] for c in summary["job"]["tunedModel"]["checkpoints"]}

    # The smoke test called the tuned model's endpoint and the base model, with the run's settings.
    tuned = [r for r in requests
             if r.method == "POST" and r.path == f"/v1/{champion['endpoint']}:generateContent"]
    base = [r for r in requests if r.method == "POST"
            and r.path == PARENT + f"/publishers/google/models/{DEFAULT_BASE_MODEL}:generateContent"]
    assert len(tuned) == len(base) == CONF["smoke_test_count"], seen
    for request in tuned + base:
        config = request.body["generationConfig"]
        assert config["temperature"] == pytest.approx(GENERATION["temperature"])
        assert config["topP"] == pytest.approx(GENERATION["top_p"])
        assert config["topK"] == GENERATION["top_k"]
        assert config["maxOutputTokens"] == CONF["max_output_tokens"]

    # The metrics came through Vertex Experiments, asked with the same project, region and credentials.
    assert {call["experiment"] for call in standin_calls} == {job_id}, "the job's experiment runs were not listed"
    for call in standin_calls:
        assert call["project"] == PROJECT and call["location"] == LOCATION
        assert call["credentials"] == "google.oauth2.service_account.Credentials"
        assert call["token"] == GOOGLE_ACCESS_TOKEN
    assert {"/train_total_loss", "/eval_total_loss"} <= set(summary["final_metrics"])
