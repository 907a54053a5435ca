"""The tuning DAG's form and shape: bounded sweep, sections, a run timeout, data passed as XComArgs."""

from __future__ import annotations

import pytest

from tests.conftest import PROJECT_ROOT

DAG_FILE = PROJECT_ROOT / "dags" / "gemini_supervised_tuning.py"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAG_FILE)).dags["gemini_supervised_tuning"]


def test_the_sweep_is_bounded(dag):
    from airflow.sdk.definitions.param import ParamsDict

    params = ParamsDict(dag.params)
    params["epoch_sweep"] = list(range(1, 9))
    params.validate()
    params = ParamsDict(dag.params)
    with pytest.raises(Exception, match="epoch_sweep"):
        params["epoch_sweep"] = list(range(1, 10))  # nine entries: refused by the form


@pytest.mark.parametrize("name, values, bad", [
    ("adapter_size_sweep", ["ADAPTER_SIZE_ONE", "ADAPTER_SIZE_FOUR"], ["ADAPTER_SIZE_SIX"]),
    ("learning_rate_multiplier_sweep", [0.5, 2.0], [0]),
])
def test_the_setting_sweeps_take_valid_values_only(dag, name, values, bad):
    from airflow.sdk.definitions.param import ParamsDict

    params = ParamsDict(dag.params)
    params[name] = values
    params.validate()
    with pytest.raises(Exception, match=name):
        ParamsDict(dag.params)[name] = bad


def test_the_form_is_grouped_in_sections(dag):
    sections = {name: param.schema.get("section") for name, param in dag.params.items()}
    assert set(sections.values()) == {"Data", "Model and hyperparameters", "Smoke test", "Guards"}, sections
    assert sections["max_cost_usd"] == "Guards" and sections["training_dataset"] == "Data"


def test_no_dropdown_of_the_form_shows_null(dag):
    """The form shows a null choice by its values_display label ("null" or "None" key), else as the word null."""
    nullable = [name for name, param in dag.params.items() if None in param.schema.get("enum", [])]
    assert "adapter_size" in nullable
    for name in nullable:
        labels = dag.params.get_param(name).schema.get("values_display", {})
        assert labels.get("null") or labels.get("None"), name


def test_the_run_has_a_timeout_longer_than_the_wait_for_a_job(dag):
    wait, create = dag.get_task("wait_for_tuning_job"), dag.get_task("create_tuning_job")
    assert dag.dagrun_timeout.total_seconds() > wait.partial_kwargs["timeout"]
    assert dag.dagrun_timeout.total_seconds() > create.partial_kwargs["job_timeout"]


def test_the_create_task_holds_a_tuning_jobs_pool_slot_until_its_job_ends(dag):
    from gemini_tuning.pool import TUNING_JOBS_POOL

    create = dag.get_task("create_tuning_job")
    assert create.pool == TUNING_JOBS_POOL and create.partial_kwargs["wait_for_completion"] is True
    # The other tasks stay out of it: a slot stands for one live job.
    assert [task.task_id for task in dag.tasks if task.pool == TUNING_JOBS_POOL] == ["create_tuning_job"]


def test_data_flows_by_xcomargs_not_jinja_pulls(dag):
    assert "xcom_pull" not in DAG_FILE.read_text()
    assert set(dag.get_task("smoke_test").upstream_task_ids) >= {"choose_champion", "resolve_inputs"}
    assert set(dag.get_task("create_tuning_job").upstream_task_ids) >= {"upload_dataset", "tuning_configs"}


def test_the_asset_alone_schedules_retraining_unless_a_cron_is_set(dag, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    monkeypatch.setenv("GEMINI_TUNING_RETRAIN_CRON", "0 3 * * 1")
    timed = DagBag(dag_folder=str(DAG_FILE)).dags["gemini_supervised_tuning"].timetable
    assert type(timed).__name__ == "AssetOrTimeSchedule"
    assert (timed.timetable.expression, str(timed.timetable.timezone)) == ("0 3 * * 1", "UTC")
    assert [asset.name for asset in timed.asset_condition.objects] == ["gemini_tuning_training_data"]


def test_publishing_waits_for_the_challenge_and_the_optional_approval(dag):
    assert set(dag.get_task("publish_tuned_model").upstream_task_ids) >= {"challenge_incumbent", "approve_publish"}
    assert dag.get_task("approve_publish").upstream_task_ids == {"challenge_incumbent"}
    assert set(dag.get_task("resolve_inputs").inlets) >= {dag.get_task("publish_tuned_model").outlets[0]}
