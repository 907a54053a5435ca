"""google-cloud-aiplatform's own REST clients (GenAiTuningService, TensorboardService) work
against the local service unchanged: the metrics are read the way they are read on Vertex."""

from __future__ import annotations

import pytest

from tests.fixtures.local_vertex import chat_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clients(local_vertex):
    from google.api_core.client_options import ClientOptions
    from google.cloud import aiplatform_v1
    from google.oauth2.credentials import Credentials

    options = ClientOptions(api_endpoint=local_vertex.base_url)
    credentials = Credentials(token=local_vertex.token)
    return (aiplatform_v1.GenAiTuningServiceClient(credentials=credentials, client_options=options, transport="rest"),
            aiplatform_v1.TensorboardServiceClient(credentials=credentials, client_options=options, transport="rest"))


def test_tuning_job_and_its_time_series(local_vertex, clients):
    from google.cloud import aiplatform_v1

    tuning, tensorboards = clients
    created = tuning.create_tuning_job(parent=local_vertex.parent, tuning_job=aiplatform_v1.TuningJob(
        base_model="gemini-2.5-flash",
        supervised_tuning_spec=aiplatform_v1.SupervisedTuningSpec(
            training_dataset_uri=local_vertex.write_dataset("aiplatform.jsonl", chat_rows(16)),
            hyper_parameters=aiplatform_v1.SupervisedHyperParameters(epoch_count=1),
        ),
    ))
    local_vertex.wait_for_state(created.name, {"JOB_STATE_SUCCEEDED"})
    job = tuning.get_tuning_job(name=created.name)
    assert job.state == aiplatform_v1.JobState.JOB_STATE_SUCCEEDED
    assert job.tuning_data_stats.supervised_tuning_data_stats.tuning_dataset_example_count == 16
    assert created.name in [listed.name for listed in tuning.list_tuning_jobs(parent=local_vertex.parent)]

    series = list(tensorboards.list_tensorboard_time_series(parent=job.experiment + "/runs/train"))
    loss = next(s for s in series if s.display_name == "/train_total_loss")
    data = tensorboards.batch_read_tensorboard_time_series_data(request={
        "tensorboard": job.experiment.split("/experiments/")[0], "time_series": [loss.name]})
    steps = [point.step for point in data.time_series_data[0].values]
    assert steps == list(range(1, job.tuning_data_stats.supervised_tuning_data_stats.tuning_step_count + 1))
    assert all(point.scalar.value > 0 for point in data.time_series_data[0].values)
