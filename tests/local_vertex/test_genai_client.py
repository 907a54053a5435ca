"""google-genai's real client, Vertex mode, against the running local service."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.local_vertex import chat_rows

pytestmark = pytest.mark.slow


def _wait_ended(client, name: str, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.tunings.get(name=name)
        if job.has_ended:
            return job
        assert time.monotonic() < deadline, f"{name} still {job.state}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def tuned_job(local_vertex):
    """One job tuned through client.tunings.tune with genai's default API version (v1beta1)."""
    from google.genai import types

    client = local_vertex.genai_client(api_version=None)
    uri = local_vertex.write_dataset("genai-train.jsonl", chat_rows(24))
    job = client.tunings.tune(
        base_model="gemini-2.5-flash",
        training_dataset=types.TuningDataset(gcs_uri=uri),
        config=types.CreateTuningJobConfig(
            tuned_model_display_name="genai-test",
            epoch_count=1,
            labels={"suite": "genai", "run": "one"},
        ),
    )
    assert job.name.startswith(f"{local_vertex.parent}/tuningJobs/")
    assert job.state in (types.JobState.JOB_STATE_QUEUED, types.JobState.JOB_STATE_PENDING)
    return _wait_ended(client, job.name)


def test_tune_then_get_reports_the_finished_job(tuned_job, local_vertex):
    from google.genai import types

    assert tuned_job.state == types.JobState.JOB_STATE_SUCCEEDED, tuned_job.error
    assert tuned_job.tuned_model_display_name == "genai-test"
    assert tuned_job.tuned_model.endpoint.startswith(f"{local_vertex.parent}/endpoints/")
    assert tuned_job.tuned_model.model.startswith(f"{local_vertex.parent}/models/")
    assert tuned_job.start_time <= tuned_job.end_time
    assert tuned_job.create_time <= tuned_job.start_time
    hyper = tuned_job.supervised_tuning_spec.hyper_parameters
    assert hyper.epoch_count == 1
    # Unset values are filled with the recommended ones, and reported.
    assert hyper.adapter_size is not None and hyper.learning_rate_multiplier is not None
    stats = tuned_job.tuning_data_stats.supervised_tuning_data_stats
    assert stats.tuning_dataset_example_count == 24
    assert tuned_job.experiment.endswith(f"/experiments/{tuned_job.name.rsplit('/', 1)[1]}")


def test_get_and_list_on_v1(tuned_job, local_vertex):
    client = local_vertex.genai_client(api_version="v1")
    assert client.tunings.get(name=tuned_job.name).name == tuned_job.name
    names = [job.name for job in client.tunings.list(config={"page_size": 1})]
    assert tuned_job.name in names
    only_ours = list(client.tunings.list(config={"filter": 'labels.suite="genai" AND state="JOB_STATE_SUCCEEDED"'}))
    assert [job.name for job in only_ours] == [tuned_job.name]


def test_list_pages_newest_first(local_vertex):
    from google.genai import types

    client = local_vertex.genai_client()
    uri = local_vertex.write_dataset("genai-pages.jsonl", chat_rows(8))
    created = [
        client.tunings.tune(base_model="gemini-2.5-flash", training_dataset=types.TuningDataset(gcs_uri=uri),
                            config=types.CreateTuningJobConfig(epoch_count=1, labels={"suite": "pages"}))
        for _ in range(3)
    ]
    pager = client.tunings.list(config={"page_size": 2, "filter": 'labels.suite="pages"'})
    assert len(pager.page) == 2
    listed = [job.name for job in pager]
    assert listed == [job.name for job in reversed(created)]
    for job in created:  # no need to train them: the queue moves on for the next tests
        client.tunings.cancel(name=job.name)
        assert _wait_ended(client, job.name).state == types.JobState.JOB_STATE_CANCELLED


def test_cancel_an_ended_job_is_failed_precondition(tuned_job, local_vertex):
    from google.genai import errors

    client = local_vertex.genai_client()
    with pytest.raises(errors.ClientError) as raised:
        client.tunings.cancel(name=tuned_job.name)
    assert raised.value.code == 400
    assert raised.value.status == "FAILED_PRECONDITION"


def test_get_unknown_job_is_not_found(local_vertex):
    from google.genai import errors

    client = local_vertex.genai_client()
    with pytest.raises(errors.ClientError) as raised:
        client.tunings.get(name=f"{local_vertex.parent}/tuningJobs/123")
    assert raised.value.code == 404


def test_generate_content_on_the_tuned_endpoint(tuned_job, local_vertex):
    from google.genai import types

    client = local_vertex.genai_client()
    response = client.models.generate_content(
        model=tuned_job.tuned_model.endpoint,
        contents="message 99: my billing question",
        config=types.GenerateContentConfig(temperature=0, max_output_tokens=6,
                                           system_instruction="Classify the message."),
    )
    assert isinstance(response.text, str)
    assert response.candidates[0].finish_reason in (types.FinishReason.STOP, types.FinishReason.MAX_TOKENS)
    usage = response.usage_metadata
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert 0 < usage.candidates_token_count <= 6


def test_generate_content_on_a_base_model_is_deterministic_at_temperature_zero(local_vertex):
    from google.genai import types

    client = local_vertex.genai_client(api_version=None)
    config = types.GenerateContentConfig(temperature=0, max_output_tokens=5)
    first = client.models.generate_content(model="gemini-2.5-flash", contents="hello", config=config)
    second = client.models.generate_content(model="gemini-2.5-flash", contents="hello", config=config)
    assert first.text == second.text


def test_generate_content_on_an_unknown_endpoint_is_not_found(local_vertex):
    from google.genai import errors

    client = local_vertex.genai_client()
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model=f"{local_vertex.parent}/endpoints/42", contents="hi")
    assert raised.value.code == 404


def test_the_async_client_reads_jobs_too(tuned_job, local_vertex):
    import asyncio

    async def read():
        client = local_vertex.genai_client()
        job = await client.aio.tunings.get(name=tuned_job.name)
        listed = [j.name async for j in await client.aio.tunings.list(config={"page_size": 5})]
        return job, listed

    job, listed = asyncio.run(read())
    assert job.state == tuned_job.state and tuned_job.name in listed
