"""
### Supervised tuning of a Gemini model

Tunes a Gemini model on your JSONL examples, the way Google's *supervised tuning* guide does it,
with the checks around it that a scheduled job needs:

1. **validate_dataset**: every line of the training and validation files is checked as Vertex
   would (format, roles, limits) plus duplicates, leakage and label balance. A bad file stops the
   run here with a report that names the line, and nothing is uploaded.
2. **upload_dataset**: the files go to the dataset bucket under their content hash, once.
3. **recommend_config**: picks the epochs and checks the example count for the task type (Google's
   table: classification 500+, summarization 1000+, extractive QA 500+, chat 1000+, 2 to 4 epochs).
   Too few examples ends the run on **not_enough_data**, unless *Allow a small dataset* is on.
4. **create_tuning_job** and **wait_for_tuning_job**: one job per epoch count (several with an
   *epoch sweep*), created once per run (a retry reuses it) and watched by the triggerer, so no
   worker slot is held while it trains. **choose_champion** keeps the lowest validation loss.
5. **smoke_test**: the tuned model answers held-out prompts, and so does the base model; with the
   *quality gate* on, the run fails when the tuned model scores below the base model.
6. **archive_metrics**: loss and accuracy curves, the metrics as Parquet and CSV, and a summary.
7. **publish_tuned_model**: an Asset event (`gemini_tuned_model`) with the endpoint and metrics,
   for the pipelines that use the model.

The run also starts by itself when the `gemini_tuning_training_data` Asset gets an event (a new
training file landed; put its URI in the event's extra as `training_dataset`). The backend is
the `gemini_tuning_default` connection: Vertex AI, or the project's local Vertex service.
"""

from __future__ import annotations

from pathlib import Path

import pendulum

from airflow.sdk import Asset, Param, chain, dag, task
from gemini_tuning.callbacks import cancel_tuning_jobs_of_run
from gemini_tuning.models import ADAPTER_SIZES, DEFAULT_BASE_MODEL, SUGGESTED_BASE_MODELS
from gemini_tuning.operators.archive_metrics import ArchiveTuningMetricsOperator
from gemini_tuning.operators.dataset import UploadTuningDatasetOperator, ValidateTuningDatasetOperator
from gemini_tuning.operators.smoke_test import SmokeTestOperator
from gemini_tuning.operators.tuning_job import CreateTuningJobOperator
from gemini_tuning.sensors.tuning_job import TuningJobSensor

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = "include/sample_data/classification"
TRAINING_DATA = Asset(name="gemini_tuning_training_data")
TUNED_MODEL = Asset(name="gemini_tuned_model")
TASK_TYPES = ["classification", "summarization", "extractive_qa", "chat"]

# Where datasets are uploaded and runs archived: Airflow Variables (or AIRFLOW_VAR_* environment
# variables), read when a task runs, with defaults that suit the local backend.
DATASET_DESTINATION = "{{ var.value.get('gemini_tuning_dataset_uri', 'gs://gemini-tuning-datasets/datasets') }}"
ARCHIVE_ROOT = "{{ var.value.get('gemini_tuning_archive_uri', 'file://" + str(PROJECT_ROOT / ".archive") + "') }}"
ARCHIVE_PREFIX = ARCHIVE_ROOT + "/{{ dag.dag_id }}/{{ run_id | replace(':', '-') | replace('+', '-') }}"
BACKEND = "{{ var.value.get('gemini_tuning_backend', 'local') }}"
TOKENIZER = "{{ var.value.get('gemini_tuning_tokenizer', '') }}"

PARAMS = {
    "tuned_model_display_name": Param(
        "support-ticket-router", type="string", minLength=1, maxLength=128, title="Tuned model name",
        description="Display name of the tuned model (up to 128 characters).",
    ),
    "base_model": Param(
        DEFAULT_BASE_MODEL, type="string", minLength=1, examples=list(SUGGESTED_BASE_MODELS), title="Base model",
        description="The Gemini model to tune: one of the suggestions (the models that support "
        "supervised tuning) or any other model name.",
    ),
    "region": Param(
        None, type=["null", "string"], title="Region",
        description="Where the tuning job runs and the tuned model is deployed, e.g. us-central1. "
        "Leave empty for the connection's region.",
    ),
    "training_dataset": Param(
        f"{SAMPLE_DATA}/train.jsonl", type="string", minLength=1, title="Training dataset",
        description="JSONL file: a path (relative to the project), file:// or gs:// URI. "
        "Aim for 100 to 500 examples at least.",
    ),
    "validation_dataset": Param(
        f"{SAMPLE_DATA}/validation.jsonl", type=["null", "string"], title="Validation dataset",
        description="Optional JSONL file for validation metrics during training (at most 5,000 examples).",
    ),
    "task_type": Param(
        "classification", type="string", enum=TASK_TYPES, title="Task type",
        description="Chooses the recommended configuration: minimum examples and epochs.",
    ),
    "epoch_count": Param(
        None, type=["null", "integer"], minimum=1, maximum=100, title="Epochs",
        description="Passes over the training data. Leave empty for the recommended value.",
    ),
    "epoch_sweep": Param(
        [], type="array", items={"type": "integer", "minimum": 1, "maximum": 100}, title="Epoch sweep",
        description="Optional: tune once per epoch count listed, keep the lowest validation loss.",
    ),
    "adapter_size": Param(
        None, type=["null", "string"], enum=[None, *ADAPTER_SIZES], title="Adapter size",
        description="LoRA adapter size. Leave empty for the recommended value. "
        "Gemini 2.5 Pro takes up to EIGHT, the other models up to SIXTEEN.",
    ),
    "learning_rate_multiplier": Param(
        None, type=["null", "number"], exclusiveMinimum=0, maximum=10, title="Learning-rate multiplier",
        description="Multiplies the recommended learning rate. Leave empty for 1.0.",
    ),
    "allow_small_dataset": Param(
        False, type="boolean", title="Allow a small dataset",
        description="Tune even when there are fewer examples than recommended for the task type.",
    ),
    "smoke_test_prompts": Param(
        f"{SAMPLE_DATA}/heldout.jsonl", type=["null", "string"], title="Smoke-test prompts",
        description="JSONL of held-out examples (prompt and expected answer). Empty: sample the validation set.",
    ),
    "smoke_test_count": Param(
        50, type="integer", minimum=1, maximum=1000, title="Smoke-test prompts to run",
        description="How many prompts the smoke test sends to the tuned and base models.",
    ),
    "temperature": Param(0.0, type="number", minimum=0, maximum=2, title="Temperature",
                         description="0 is greedy decoding: the same answer every time."),
    "top_p": Param(0.95, type="number", minimum=0, maximum=1, title="Top-p"),
    "top_k": Param(40, type="integer", minimum=1, maximum=100, title="Top-k"),
    "max_output_tokens": Param(16, type="integer", minimum=1, maximum=8192, title="Max output tokens"),
    "require_better_than_base": Param(
        True, type="boolean", title="Quality gate",
        description="Fail the run when the tuned model scores below the base model on the smoke test.",
    ),
}


def _job_name(job: dict) -> str:
    return job["name"]


@dag(
    dag_id="gemini_supervised_tuning",
    schedule=[TRAINING_DATA],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["gemini", "vertex-ai", "tuning"],
    default_args={"owner": "ml-platform", "retries": 2, "retry_delay": pendulum.duration(seconds=30)},
    params=PARAMS,
    max_active_runs=1,
    render_template_as_native_obj=True,
    on_failure_callback=cancel_tuning_jobs_of_run,
)
def gemini_supervised_tuning():
    @task
    def resolve_inputs(params=None, triggering_asset_events=None) -> dict:
        """The files of this run: from the triggering Asset event if any, else from the form.

        Relative paths are relative to the project, so the sample data works from any folder.
        """
        files = {key: params[key] for key in ("training_dataset", "validation_dataset", "smoke_test_prompts")}
        for event in (triggering_asset_events or {}).get(TRAINING_DATA, []):
            files.update({key: event.extra[key] for key in files if event.extra.get(key)})
        for key, value in files.items():
            if value and "://" not in value and not Path(value).is_absolute():
                files[key] = str(PROJECT_ROOT / value)
        return files

    inputs = resolve_inputs()

    validate = ValidateTuningDatasetOperator(
        task_id="validate_dataset",
        training_dataset="{{ ti.xcom_pull(task_ids='resolve_inputs')['training_dataset'] }}",
        validation_dataset="{{ ti.xcom_pull(task_ids='resolve_inputs')['validation_dataset'] }}",
        tuning_task="{{ params.task_type }}",
        backend=BACKEND,
        tokenizer=TOKENIZER,
        report_dir=ARCHIVE_PREFIX + "/dataset_report",
        base_model="{{ params.base_model }}",
    )
    upload = UploadTuningDatasetOperator(
        task_id="upload_dataset",
        training_dataset="{{ ti.xcom_pull(task_ids='resolve_inputs')['training_dataset'] }}",
        validation_dataset="{{ ti.xcom_pull(task_ids='resolve_inputs')['validation_dataset'] }}",
        validation_report=validate.output,
        destination=DATASET_DESTINATION,
    )

    @task.branch
    def recommend_config(report: dict, params=None, ti=None) -> str:
        """Google's recommended configuration for the task type; branches on whether to tune."""
        from gemini_tuning.recommendations import recommend

        training = next(f for f in report["files"] if f["role"] == "training")
        recommendation = recommend(
            params["task_type"],
            training["examples"],
            class_count=training.get("class_count"),
            epoch_count=params["epoch_count"],
            epoch_sweep=params["epoch_sweep"],
            adapter_size=params["adapter_size"],
            learning_rate_multiplier=params["learning_rate_multiplier"],
            allow_small_dataset=params["allow_small_dataset"],
            warnings=[w["message"] for w in report.get("warnings", [])],
        )
        for reason in recommendation.reasons:
            print(f"recommendation: {reason}")
        ti.xcom_push(key="recommendation", value=recommendation.to_dict())
        return "tuning_configs" if recommendation.proceed else "not_enough_data"

    @task
    def not_enough_data(ti=None) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        recommendation = ti.xcom_pull(task_ids="recommend_config", key="recommendation")
        raise AirflowFailException("Not enough data to tune:\n" + "\n".join(recommendation["reasons"]))

    @task
    def tuning_configs(ti=None) -> list[int]:
        """One tuning job per epoch count: a single one, or the epoch sweep."""
        return ti.xcom_pull(task_ids="recommend_config", key="recommendation")["epoch_counts"]

    epochs = tuning_configs()
    create_jobs = CreateTuningJobOperator.partial(
        task_id="create_tuning_job",
        base_model="{{ params.base_model }}",
        training_dataset_uri="{{ ti.xcom_pull(task_ids='upload_dataset')['training_dataset_uri'] }}",
        validation_dataset_uri="{{ ti.xcom_pull(task_ids='upload_dataset')['validation_dataset_uri'] }}",
        tuned_model_display_name="{{ params.tuned_model_display_name }}",
        description="Tuned by Airflow: {{ dag.dag_id }} / {{ run_id }}",
        adapter_size="{{ params.adapter_size }}",
        learning_rate_multiplier="{{ params.learning_rate_multiplier }}",
        location="{{ params.region }}",
    ).expand(epoch_count=epochs)
    wait_for_jobs = TuningJobSensor.partial(
        task_id="wait_for_tuning_job",
        location="{{ params.region }}",
        poll_interval=5,
        max_poll_interval=30,
        timeout=pendulum.duration(hours=24).total_seconds(),
    ).expand(job_name=create_jobs.output.map(_job_name))

    @task
    def choose_champion(jobs: list[dict], params=None) -> dict:
        """The job with the lowest final validation loss (the only one without a sweep)."""
        from gemini_tuning.champion import pick_champion
        from gemini_tuning.hooks.tuning import GenAITuningHook
        from gemini_tuning.operators.archive_metrics import final_metrics, metrics_frame

        hook = GenAITuningHook(location=params["region"])
        candidates = []
        for created in jobs:
            job = hook.get_tuning_job(created["name"])
            epochs = job.supervised_tuning_spec.hyper_parameters.epoch_count
            finals = final_metrics(metrics_frame(hook.read_metric_series(job)))
            candidates.append({"name": job.name, "epoch_count": epochs, "final_metrics": finals})
            print(f"{job.name}: {epochs} epochs, final metrics {finals}")
        champion = pick_champion(candidates)
        print(f"champion: {champion['name']} ({champion['judged_by']} {champion['loss']:.4f})")
        return champion

    champion = choose_champion(create_jobs.output)

    smoke_test = SmokeTestOperator(
        task_id="smoke_test",
        tuning_job_name="{{ ti.xcom_pull(task_ids='choose_champion')['name'] }}",
        prompts_file="{{ ti.xcom_pull(task_ids='resolve_inputs')['smoke_test_prompts'] }}",
        validation_dataset_uri="{{ ti.xcom_pull(task_ids='resolve_inputs')['validation_dataset'] }}",
        max_prompts="{{ params.smoke_test_count }}",
        temperature="{{ params.temperature }}",
        top_p="{{ params.top_p }}",
        top_k="{{ params.top_k }}",
        max_output_tokens="{{ params.max_output_tokens }}",
        compare_with_base_model=True,
        require_better_than_base="{{ params.require_better_than_base }}",
        location="{{ params.region }}",
    )
    archive = ArchiveTuningMetricsOperator(
        task_id="archive_metrics",
        tuning_job_name="{{ ti.xcom_pull(task_ids='choose_champion')['name'] }}",
        archive_prefix=ARCHIVE_PREFIX,
        # Pushed before the quality gate decides, and the archive runs once the champion exists
        # whatever the gate said: the curves of a model that failed it are archived too.
        smoke_test_results=smoke_test.output["smoke_test_results"],
        trigger_rule="all_done_min_one_success",
        run_summary={
            "recommendation": "{{ ti.xcom_pull(task_ids='recommend_config', key='recommendation') }}",
            "champion": champion,
            "dataset": "{{ ti.xcom_pull(task_ids='upload_dataset') }}",
            "dataset_report": "{{ ti.xcom_pull(task_ids='validate_dataset') }}",
        },
        location="{{ params.region }}",
    )

    @task(outlets=[TUNED_MODEL])
    def publish_tuned_model(champion: dict, smoke: dict, archived: dict, outlet_events=None) -> dict:
        """Tell downstream pipelines that a new tuned model exists, with what they need to use it."""
        event = {
            "tuning_job": champion["name"],
            "endpoint": smoke["model"],
            "base_model": smoke["base_model"],
            "epoch_count": champion["epoch_count"],
            "final_metrics": {name: point["value"] for name, point in champion["final_metrics"].items()},
            "smoke_test_score": smoke["tuned"]["score"],
            "base_model_score": smoke["base"]["score"] if smoke["base"] else None,
            "archive": archived,
        }
        outlet_events[TUNED_MODEL].extra = event
        return event

    branch = recommend_config(validate.output)
    chain(inputs, validate, upload, branch)
    branch >> not_enough_data()
    chain(branch, epochs, create_jobs, wait_for_jobs, champion, smoke_test, archive)
    publish_tuned_model(champion, smoke_test.output, archive.output)


gemini_supervised_tuning()
