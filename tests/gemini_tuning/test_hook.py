"""GenAITuningHook: the two connection shapes and the Vertex-only paths, with Google's clients mocked."""

from __future__ import annotations

import json
from unittest import mock

import pandas as pd
import pytest
from google.genai import types

from gemini_tuning.hooks.tuning import GenAITuningHook, is_transient_error, job_region, series_rows_from_batch_read
from gemini_tuning.jobs import label_value

BASE_GOOGLE = "airflow.providers.google.common.hooks.base_google"
JOB = "projects/my-project/locations/europe-west4/tuningJobs/123"


@pytest.fixture
def connection(monkeypatch):
    def set_connection(password: str | None = None, **extra):
        monkeypatch.setenv(
            "AIRFLOW_CONN_GEMINI_TUNING_DEFAULT",
            json.dumps({"conn_type": "google_cloud_platform", "password": password, "extra": extra}),
        )

    return set_connection


@pytest.fixture
def genai_client():
    with mock.patch("google.genai.Client") as client_class:
        yield client_class


def test_vertex_connection_uses_the_providers_credentials(connection, genai_client):
    connection(project="my-project", location="europe-west4", key_path="/secrets/sa.json")
    credentials = mock.Mock(name="service-account-credentials")
    with mock.patch(f"{BASE_GOOGLE}.get_credentials_and_project_id", return_value=(credentials, "key-project")) as load:
        hook = GenAITuningHook()
        hook.get_genai_client()
    assert load.call_args.kwargs["key_path"] == "/secrets/sa.json"
    kwargs = genai_client.call_args.kwargs
    assert kwargs["vertexai"] is True
    assert kwargs["project"] == "my-project"  # the connection's project wins over the key's
    assert kwargs["location"] == "europe-west4"
    assert kwargs["credentials"] is credentials
    assert kwargs["http_options"].base_url is None  # Vertex's own regional endpoint
    assert kwargs["http_options"].api_version == "v1"
    assert kwargs["http_options"].retry_options.attempts > 1  # reads, lists, cancels retry; create opts out


def test_vertex_connection_with_impersonation(connection, genai_client):
    connection(project="my-project")
    with mock.patch(f"{BASE_GOOGLE}.get_credentials_and_project_id", return_value=(mock.Mock(), None)) as load:
        GenAITuningHook(impersonation_chain=["a@p.iam.gserviceaccount.com", "b@p.iam.gserviceaccount.com"]).client
    assert load.call_args.kwargs["target_principal"] == "b@p.iam.gserviceaccount.com"
    assert load.call_args.kwargs["delegates"] == ["a@p.iam.gserviceaccount.com"]
    assert genai_client.call_args.kwargs["location"] == "us-central1"  # the default region


@pytest.mark.parametrize(
    ("password", "extra_token", "expected"),
    [("from-password", None, "from-password"), (None, "from-extra", "from-extra"), ("p", "extra-wins", "extra-wins")],
)
def test_local_connection_uses_a_static_bearer_token(connection, genai_client, password, extra_token, expected):
    extra = {"project": "local", "location": "us-central1", "base_url": "http://127.0.0.1:8790/"}
    if extra_token:
        extra["static_token"] = extra_token
    connection(password=password, **extra)
    with mock.patch(f"{BASE_GOOGLE}.get_credentials_and_project_id") as google_auth:
        GenAITuningHook().client
    google_auth.assert_not_called()  # no Application Default Credentials lookup
    kwargs = genai_client.call_args.kwargs
    assert kwargs["credentials"].token == expected
    assert kwargs["project"] == "local"
    assert kwargs["http_options"].base_url == "http://127.0.0.1:8790"


def test_overrides_and_job_names(connection):
    connection(project="conn-project", location="us-central1", base_url="http://svc", static_token="t")
    hook = GenAITuningHook(project_id="my-project", location="europe-west4")
    assert hook.qualify_job_name("123") == JOB
    assert hook.qualify_job_name(JOB) == JOB


def test_job_urls(connection):
    connection(project="my-project", base_url="http://127.0.0.1:8790", static_token="t")
    assert GenAITuningHook().job_url(JOB) == f"http://127.0.0.1:8790/v1/{JOB}"
    connection(project="my-project")
    assert GenAITuningHook().job_url(JOB) == (
        "https://console.cloud.google.com/vertex-ai/generative/language/locations/europe-west4/"
        "tuning/tuningJob/123?project=my-project"
    )


def test_create_sends_only_the_hyperparameters_that_are_set(connection, genai_client):
    connection(project="p", base_url="http://svc", static_token="t")
    GenAITuningHook().create_tuning_job(
        base_model="gemini-2.0-flash-001",
        training_dataset_uri="gs://b/train.jsonl",
        validation_dataset_uri="gs://b/validation.jsonl",
        epoch_count=3,
        labels={"k": "v"},
    )
    call = genai_client.return_value.tunings.tune.call_args.kwargs
    assert call["base_model"] == "gemini-2.0-flash-001"
    assert call["training_dataset"].gcs_uri == "gs://b/train.jsonl"
    config = call["config"]
    assert config.validation_dataset.gcs_uri == "gs://b/validation.jsonl"
    assert config.epoch_count == 3
    assert config.adapter_size is None and config.learning_rate_multiplier is None  # the service recommends
    assert config.labels == {"k": "v"}


def test_find_by_labels_rechecks_labels_and_sorts_newest_first(connection, genai_client):
    connection(project="p", base_url="http://svc", static_token="t")
    jobs = [
        types.TuningJob(name="old", labels={"a": "1", "b": "2"}, create_time="2026-01-01T00:00:00Z"),
        types.TuningJob(name="other", labels={"a": "1"}, create_time="2026-01-03T00:00:00Z"),
        types.TuningJob(name="new", labels={"a": "1", "b": "2", "c": "3"}, create_time="2026-01-02T00:00:00Z"),
    ]
    genai_client.return_value.tunings.list.return_value = iter(jobs)
    found = GenAITuningHook().find_tuning_jobs_by_labels({"b": "2", "a": "1"})
    assert [job.name for job in found] == ["new", "old"]
    assert genai_client.return_value.tunings.list.call_args.kwargs["config"].filter == 'labels.a="1" AND labels.b="2"'


def test_vertex_metrics_come_from_the_experiment_through_aiplatform(connection):
    connection(project="my-project", location="europe-west4")
    credentials = mock.Mock()
    run = mock.Mock()
    run.get_time_series_data_frame.return_value = pd.DataFrame(
        {
            "step": [1, 2],
            "wall_time": pd.to_datetime(["2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"]),
            "/train_total_loss": [2.5, 2.0],
            "eval_total_loss": [None, 2.2],  # display names may come without the slash
            "unrelated": [1.0, 1.0],
        }
    )
    experiment = "projects/my-project/locations/europe-west4/metadataStores/default/contexts/tuning-exp-1"
    job = types.TuningJob(name=JOB, experiment=experiment)
    with (
        mock.patch(f"{BASE_GOOGLE}.get_credentials_and_project_id", return_value=(credentials, None)),
        mock.patch("google.cloud.aiplatform.ExperimentRun.list", return_value=[run]) as list_runs,
    ):
        rows = GenAITuningHook().read_metric_series(job)
    assert list_runs.call_args.kwargs == {
        "experiment": "tuning-exp-1",
        "project": "my-project",
        "location": "europe-west4",
        "credentials": credentials,
    }
    assert sorted((row["metric"], row["step"], row["value"]) for row in rows) == [
        ("/eval_total_loss", 2, 2.2),
        ("/train_total_loss", 1, 2.5),
        ("/train_total_loss", 2, 2.0),
    ]
    assert rows[0]["wall_time"].startswith("2026-01-01T00:00:0")


def test_a_job_without_experiment_has_no_series(connection):
    connection(project="p", base_url="http://svc", static_token="t")
    assert GenAITuningHook().read_metric_series(types.TuningJob(name=JOB)) == []


def test_batch_read_rows():
    body = {
        "timeSeriesData": [
            {
                "tensorboardTimeSeriesId": "train_total_loss",
                "values": [{"step": "3", "wallTime": "2026-01-01T00:00:00Z", "scalar": {"value": 1.5}}],
            }
        ]
    }
    assert series_rows_from_batch_read(body) == [
        {"metric": "/train_total_loss", "step": 3, "value": 1.5, "wall_time": "2026-01-01T00:00:00Z"}
    ]


def test_label_values_are_valid_vertex_labels():
    assert label_value("My.DAG id/with:odd chars") == "my-dag-id-with-odd-chars"
    assert len(label_value("x" * 100)) == 63


def test_transient_error_classification():
    from google.genai import errors

    assert is_transient_error(errors.ServerError(500, {"error": {"code": 500}}))
    assert is_transient_error(errors.ClientError(429, {"error": {"code": 429}}))
    assert not is_transient_error(errors.ClientError(400, {"error": {"code": 400}}))
    assert not is_transient_error(ValueError("bad"))


def test_a_password_on_a_vertex_connection_is_not_a_bearer_token(connection, genai_client):
    """Only base_url decides the backend: a Vertex connection keeps the provider's credentials."""
    connection(password="not-a-token", project="my-project")
    credentials = mock.Mock(name="adc")
    with mock.patch(f"{BASE_GOOGLE}.get_credentials_and_project_id", return_value=(credentials, None)) as load:
        hook = GenAITuningHook()
        hook.client
    load.assert_called_once()
    assert hook.static_token is None
    assert genai_client.call_args.kwargs["credentials"] is credentials


def test_a_full_job_name_decides_the_region(connection, genai_client):
    connection(project="my-project", location="us-central1")
    with mock.patch(f"{BASE_GOOGLE}.get_credentials_and_project_id", return_value=(mock.Mock(), None)):
        hook = GenAITuningHook()
        hook.get_tuning_job(JOB)
        hook.cancel_tuning_job(JOB)
        hook.get_tuning_job("456")
    regions = [c.kwargs["location"] for c in genai_client.call_args_list]
    assert regions == ["europe-west4", "us-central1"]  # one client per region, reused
    assert job_region(JOB) == "europe-west4" and job_region("123") is None
    assert hook.for_job(JOB) is hook.for_job(JOB)


def test_list_is_paged_and_bounded(connection, genai_client):
    connection(project="p", base_url="http://svc", static_token="t")
    pages_read = []

    def pager(**_):
        for index in range(10_000):
            pages_read.append(index)
            yield types.TuningJob(name=str(index))

    genai_client.return_value.tunings.list.side_effect = pager
    jobs = GenAITuningHook().list_tuning_jobs(page_size=50, max_jobs=120)
    assert len(jobs) == 120 and len(pages_read) == 120
    assert genai_client.return_value.tunings.list.call_args.kwargs["config"].page_size == 50


def test_vertex_default_checkpoint_is_set_with_genai_model_update_in_the_models_region(connection, genai_client):
    """On the Vertex configuration: google-genai's models.update (a PATCH of the Model's
    defaultCheckpointId) and models.get, on the client of the region the model's name names."""
    connection(project="my-project", location="us-central1")
    model = "projects/my-project/locations/europe-west4/models/456@1"
    with mock.patch(f"{BASE_GOOGLE}.get_credentials_and_project_id", return_value=(mock.Mock(), None)):
        hook = GenAITuningHook()
        hook.set_default_checkpoint(model, "2")
        hook.get_tuned_model(model)
    assert [c.kwargs["location"] for c in genai_client.call_args_list] == ["europe-west4"]
    models = genai_client.return_value.models
    update = models.update.call_args.kwargs
    assert update["model"] == model and update["config"].default_checkpoint_id == "2"
    assert models.get.call_args.kwargs == {"model": model}


def test_checkpoints_are_read_from_the_job_in_training_order():
    tuned = types.TunedModel(model="m@1", endpoint="main", checkpoints=[
        types.TunedModelCheckpoint(checkpoint_id="2", epoch=2, step=20, endpoint="e2"),
        types.TunedModelCheckpoint(checkpoint_id="1", epoch=1, step=10, endpoint="e1")])
    job = types.TuningJob(name=JOB, tuned_model=tuned)
    assert GenAITuningHook.list_checkpoints(job) == [
        {"checkpoint_id": "1", "epoch": 1, "step": 10, "endpoint": "e1"},
        {"checkpoint_id": "2", "epoch": 2, "step": 20, "endpoint": "e2"}]
    # A job that lists no checkpoint has one: its final model on the main endpoint.
    final = types.TuningJob(name=JOB, tuned_model=types.TunedModel(model="m@1", endpoint="main"),
                            supervised_tuning_spec=types.SupervisedTuningSpec(
                                hyper_parameters=types.SupervisedHyperParameters(epoch_count=3)))
    assert GenAITuningHook.list_checkpoints(final) == [{"checkpoint_id": None, "epoch": 3, "step": None, "endpoint": "main"}]
    assert GenAITuningHook.list_checkpoints(types.TuningJob(name=JOB)) == []
