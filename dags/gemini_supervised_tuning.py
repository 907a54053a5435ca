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
   It also estimates the cost (billable tokens times epochs, at the dated price table's rate) and,
   on the local backend, the training time; above *Max cost (USD)* the run stops here, before any
   job is created.
4. **create_tuning_job** and **wait_for_tuning_job**: one job (one per setting of an *adapter-size*
   or *learning-rate sweep*), created once per run (a retry reuses it). An *epoch sweep* costs one
   job of the largest epoch count: Vertex keeps a checkpoint after every epoch. The create task
   stays deferred in the triggerer until its job ends (no worker slot is held while it trains),
   holding a slot of the `gemini_tuning_jobs` pool: at most that many jobs run at once, over all
   runs and sweeps (1 by default, Vertex's default quota of concurrent tuning jobs); a job waits in
   the create task for a free slot. The wait then confirms the job succeeded, or fails with the
   job's own message. **choose_champion** keeps the checkpoint with the lowest validation loss, of
   every job, and makes it the model's default.
5. **smoke_test**: the tuned model answers held-out prompts, and so does the base model; with the
   *quality gate* on, the run fails when the tuned model scores below the base model.
6. **archive_metrics**: loss and accuracy curves, the metrics as Parquet and CSV, and a summary.
7. **challenge_incumbent**: the model in use now (the *incumbent*, the last one this pipeline
   published) answered the same prompts with the same settings. The new model is published only
   when it scores at least as well; otherwise **keep_incumbent** ends the run with both scores.
   With *Require approval* on, **approve_publish** asks a person first (Browse → Required
   Actions), showing the three scores and a few answers side by side.
8. **publish_tuned_model**: an Asset event (`gemini_tuned_model`) with the model, its endpoint and
   metrics, for the pipelines that use it. The newest such event is the record of the current
   model: the next run compares with it, and can continue tuning from it. **outcome** says what
   the run did: published, incumbent kept, or rejected.

The inputs are settled by **resolve_inputs**, first: a training or prompts file that cannot be
read fails the run before anything is paid for. The run as a whole times out after 30 hours
(the wait for a job gives up after 24), and the epoch sweep holds at most 8 entries.

*Tune from* chooses what the job starts from: the base model, the incumbent (continuous tuning:
the result is the incumbent's next version; the base model when there is none yet), or a tuned
model you name.

**Retraining.** The run also starts by itself when the `gemini_tuning_training_data` Asset gets
an event: a new training file landed. Its extra must carry `training_dataset` and may carry
`validation_dataset`, `smoke_test_prompts`, `task_type`, `tuned_model_display_name`,
`allow_small_dataset`, `tune_from` (e.g. `incumbent`), `pre_tuned_model`, `smoke_test_count`,
`require_better_than_base` and `require_approval` (the other settings keep the form's defaults,
so successive runs are compared alike); the form's sample files are never used then. Without
a validation file, a seeded tenth of the training file is held out for validation (no example
on both sides; the split is in the run's summary); without prompts, the smoke test samples that
held-out part. Set the environment
variable `GEMINI_TUNING_RETRAIN_CRON` (a cron expression, UTC) where the DAG is parsed to also
retrain on that schedule, on the newest file the Asset has announced. The backend is the
`gemini_tuning_default` connection: Vertex AI, or the project's local Vertex service.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Asset, Param, chain, dag, task
from gemini_tuning.callbacks import cancel_tuning_jobs_of_run
from gemini_tuning.models import ADAPTER_SIZES, DEFAULT_BASE_MODEL, SUGGESTED_BASE_MODELS
from gemini_tuning.operators.archive_metrics import ArchiveTuningMetricsOperator
from gemini_tuning.operators.dataset import UploadTuningDatasetOperator, ValidateTuningDatasetOperator
from gemini_tuning.operators.smoke_test import DEFAULT_CONCURRENCY, SmokeTestOperator
from gemini_tuning.operators.tuning_job import CreateTuningJobOperator
from gemini_tuning.pool import TUNING_JOBS_POOL
from gemini_tuning.recommendations import MAX_JOBS, MINIMUM_EXAMPLES
from gemini_tuning.sensors.tuning_job import TuningJobSensor

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = "include/sample_data/classification"
TRAINING_DATA = Asset(name="gemini_tuning_training_data")
TUNED_MODEL = Asset(name="gemini_tuned_model")
# Entries of a sweep form field: bounded (the jobs they make are bounded by MAX_JOBS).
MAX_SWEEP = 8
# Runs overlap (data checks, smoke tests, archives); how many jobs train at once is the
# gemini_tuning_jobs pool's bound, over all runs. Further runs wait queued.
MAX_ACTIVE_RUNS = 4
# The wait for one job gives up after 24 hours; the run as a whole after 30 (data checks, the
# queue, the smoke test and the archive included).
JOB_TIMEOUT = pendulum.duration(hours=24)
RUN_TIMEOUT = pendulum.duration(hours=30)
DATA, MODEL, SMOKE_TEST, GUARDS = "Data", "Model and hyperparameters", "Smoke test", "Guards"
# Retraining on a time schedule as well as on new data: a cron expression (UTC), read when the
# DAG is parsed (an environment setting, not a Variable: no database call at every parse).
RETRAIN_CRON_ENV = "GEMINI_TUNING_RETRAIN_CRON"
TUNE_FROM = ("base_model", "incumbent", "named_model")
# How long an approval request waits for a person before it counts as rejected (a plain
# timedelta: the task reports it to the API server, which cannot serialize pendulum's Duration).
APPROVAL_TIMEOUT = timedelta(days=7)

# Where datasets are uploaded and runs archived: Airflow Variables (or AIRFLOW_VAR_* environment
# variables), read when a task runs, with defaults that suit the local backend.
DATASET_DESTINATION = "{{ var.value.get('gemini_tuning_dataset_uri', 'gs://gemini-tuning-datasets/datasets') }}"
ARCHIVE_ROOT = "{{ var.value.get('gemini_tuning_archive_uri', 'file://" + str(PROJECT_ROOT / ".archive") + "') }}"
ARCHIVE_PREFIX = ARCHIVE_ROOT + "/{{ dag.dag_id }}/{{ run_id | replace(':', '-') | replace('+', '-') }}"
BACKEND = "{{ var.value.get('gemini_tuning_backend', 'local') }}"
TOKENIZER = "{{ var.value.get('gemini_tuning_tokenizer', '') }}"
SMOKE_TEST_RESULTS = ARCHIVE_PREFIX + "/smoke_test.json"

PARAMS = {
    "tuned_model_display_name": Param(
        "support-ticket-router", type="string", minLength=1, maxLength=128, title="Tuned model name",
        description="Display name of the tuned model (up to 128 characters).", section=MODEL,
    ),
    "base_model": Param(
        DEFAULT_BASE_MODEL, type="string", minLength=1, examples=list(SUGGESTED_BASE_MODELS), title="Base model",
        description="The Gemini model to tune: one of the suggestions (the models that support "
        "supervised tuning) or any other model name.", section=MODEL,
    ),
    "tune_from": Param(
        "base_model", type="string", enum=list(TUNE_FROM), title="Tune from",
        values_display={"base_model": "The base model", "incumbent": "The incumbent (continue tuning the model in use)",
                        "named_model": "A tuned model named below"},
        description="Where the job starts: the base model, the model this pipeline published last "
        "(its next version; the base model when none is published yet), or the tuned model named below.",
        section=MODEL,
    ),
    "pre_tuned_model": Param(
        None, type=["null", "string"], title="Tuned model to continue",
        description="With 'A tuned model named below': projects/P/locations/L/models/ID (or ID@VERSION).",
        section=MODEL,
    ),
    "region": Param(
        None, type=["null", "string"], title="Region",
        description="Where the tuning job runs and the tuned model is deployed, e.g. us-central1. "
        "Leave empty for the connection's region.", section=MODEL,
    ),
    "training_dataset": Param(
        f"{SAMPLE_DATA}/train.jsonl", type="string", minLength=1, title="Training dataset",
        description="JSONL file: a path (relative to the project), file:// or gs:// URI. "
        "Aim for 100 to 500 examples at least.", section=DATA,
    ),
    "validation_dataset": Param(
        f"{SAMPLE_DATA}/validation.jsonl", type=["null", "string"], title="Validation dataset",
        description="Optional JSONL file for validation metrics during training (at most 5,000 examples).",
        section=DATA,
    ),
    "task_type": Param(
        "classification", type="string", enum=list(MINIMUM_EXAMPLES), title="Task type",
        description="Chooses the recommended configuration: minimum examples and epochs.", section=DATA,
    ),
    "epoch_count": Param(
        None, type=["null", "integer"], minimum=1, maximum=100, title="Epochs",
        description="Passes over the training data. Leave empty for the recommended value.", section=MODEL,
    ),
    "epoch_sweep": Param(
        [], type="array", items={"type": "integer", "minimum": 1, "maximum": 100}, maxItems=MAX_SWEEP,
        title="Epoch sweep",
        description=f"Optional: compare these epoch counts (at most {MAX_SWEEP}) and keep the lowest validation "
        "loss. One job of the largest count: its checkpoints after each epoch are the candidates.", section=MODEL,
    ),
    "adapter_size_sweep": Param(
        [], type="array", items={"type": "string", "enum": list(ADAPTER_SIZES)}, maxItems=MAX_SWEEP,
        title="Adapter-size sweep",
        description="Optional: one job per adapter size listed (with the learning-rate sweep, at most "
        f"{MAX_JOBS} jobs in all). Each entry is a paid job.", section=MODEL,
    ),
    "learning_rate_multiplier_sweep": Param(
        [], type="array", items={"type": "number", "exclusiveMinimum": 0, "maximum": 10}, maxItems=MAX_SWEEP,
        title="Learning-rate sweep",
        description="Optional: one job per learning-rate multiplier listed (with the adapter-size sweep, at most "
        f"{MAX_JOBS} jobs in all). Each entry is a paid job.", section=MODEL,
    ),
    "adapter_size": Param(
        None, type=["null", "string"], enum=[None, *ADAPTER_SIZES], title="Adapter size",
        values_display={"null": "Recommended for the data"},  # the form would show "null"
        description="LoRA adapter size. Leave empty for the recommended value. "
        "Gemini 2.5 Pro takes up to EIGHT, the other models up to SIXTEEN.", section=MODEL,
    ),
    "learning_rate_multiplier": Param(
        None, type=["null", "number"], exclusiveMinimum=0, maximum=10, title="Learning-rate multiplier",
        description="Multiplies the recommended learning rate. Leave empty for 1.0.", section=MODEL,
    ),
    "allow_small_dataset": Param(
        False, type="boolean", title="Allow a small dataset",
        description="Tune even when there are fewer examples than recommended for the task type.", section=GUARDS,
    ),
    "smoke_test_prompts": Param(
        f"{SAMPLE_DATA}/heldout.jsonl", type=["null", "string"], title="Smoke-test prompts",
        description="JSONL of held-out examples (prompt and expected answer). Empty: sample the validation set.",
        section=SMOKE_TEST,
    ),
    "smoke_test_count": Param(
        50, type="integer", minimum=1, maximum=1000, title="Smoke-test prompts to run",
        description="How many prompts the smoke test sends to the tuned and base models.", section=SMOKE_TEST,
    ),
    "smoke_test_concurrency": Param(
        DEFAULT_CONCURRENCY, type="integer", minimum=1, maximum=64, title="Smoke-test concurrency",
        description="Prompts in flight at once (tuned and base model together).", section=SMOKE_TEST,
    ),
    "temperature": Param(0.0, type="number", minimum=0, maximum=2, title="Temperature", section=SMOKE_TEST,
                         description="0 is greedy decoding: the same answer every time."),
    "top_p": Param(0.95, type="number", minimum=0, maximum=1, title="Top-p", section=SMOKE_TEST),
    "top_k": Param(40, type="integer", minimum=1, maximum=100, title="Top-k", section=SMOKE_TEST),
    "max_output_tokens": Param(16, type="integer", minimum=1, maximum=8192, title="Max output tokens",
                               section=SMOKE_TEST),
    "require_better_than_base": Param(
        True, type="boolean", title="Quality gate",
        description="Fail the run when the tuned model scores below the base model on the smoke test.",
        section=GUARDS,
    ),
    "require_approval": Param(
        False, type="boolean", title="Require approval",
        description="Ask a person to approve (Browse → Required Actions) before a new model is published.",
        section=GUARDS,
    ),
    "max_cost_usd": Param(
        None, type=["null", "number"], minimum=0, title="Max cost (USD)",
        description="Stop before creating any job when the estimated tuning cost is above this. "
        "Empty: no limit (the estimate is still logged).", section=GUARDS,
    ),
}


def _newest_event(inlet_events, asset: Asset):
    """The newest event the Asset has seen (None before the first), read through the task SDK."""
    return next(iter(inlet_events[asset].ascending(False).limit(1)), None)


def _current_model(inlet_events) -> dict | None:
    """The incumbent: what the newest publish event names (None before the first publish)."""
    from gemini_tuning.incumbent import incumbent_from_event

    published = _newest_event(inlet_events, TUNED_MODEL)
    return incumbent_from_event(dict(published.extra) if published else None)


def _job_name(job: dict) -> str:
    return job["name"]


def _schedule():
    """The training-data Asset, or with a cron expression in the environment, that Asset or the time."""
    cron = os.environ.get(RETRAIN_CRON_ENV, "").strip()
    if not cron:
        return [TRAINING_DATA]
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable  # croniter: parse time only when used

    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=[TRAINING_DATA])


@dag(
    dag_id="gemini_supervised_tuning",
    schedule=_schedule(),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["gemini", "vertex-ai", "tuning"],
    default_args={"owner": "ml-platform", "retries": 2, "retry_delay": pendulum.duration(seconds=30)},
    params=PARAMS,
    max_active_runs=MAX_ACTIVE_RUNS,
    dagrun_timeout=RUN_TIMEOUT,
    render_template_as_native_obj=True,
    on_failure_callback=cancel_tuning_jobs_of_run,
)
def gemini_supervised_tuning():
    @task(multiple_outputs=True, inlets=[TRAINING_DATA, TUNED_MODEL])
    def resolve_inputs(split_destination: str, params=None, triggering_asset_events=None, inlet_events=None,
                       dag_run=None) -> dict:
        """The run's data, prompts and starting model: from the training-data event if any, else the form.

        A run started by the schedule takes the newest event the Asset has seen. Every file is
        checked here, before any job is paid for; a bad input fails for good, naming the key or file.
        """
        from airflow.sdk.exceptions import AirflowFailException
        from gemini_tuning.dataset_checks.source import DatasetInputError
        from gemini_tuning.prompts import load_smoke_prompts
        from gemini_tuning.run_inputs import (
            EVENT_KEYS, FILE_KEYS, RunInputError, absolute, check_readable, from_event, held_out_split, starting_model,
            training_event,
        )

        try:
            event = training_event(dag_run.run_type, (triggering_asset_events or {}).get(TRAINING_DATA) or [],
                                   lambda: _newest_event(inlet_events, TRAINING_DATA), TRAINING_DATA.name)
            settings = (from_event(dict(event.extra), params, check=lambda key, value: PARAMS[key].resolve(value))
                        if event else {key: params[key] for key in EVENT_KEYS})
            settings.update({key: absolute(settings[key], PROJECT_ROOT) for key in FILE_KEYS})
            check_readable(settings["training_dataset"])
            split = None
            if event and not settings["validation_dataset"]:
                split = held_out_split(settings["training_dataset"], split_destination)
                settings.update({key: split[key] for key in ("training_dataset", "validation_dataset")})
                print(f"held out for validation: {split['split']}")
            prompts = load_smoke_prompts(
                prompts_file=settings["smoke_test_prompts"], validation_dataset_uri=settings["validation_dataset"]
            )
        except RunInputError as error:
            raise AirflowFailException(f"Nothing was started: {error}") from None
        except DatasetInputError as error:
            raise AirflowFailException(f"Nothing was started, a file cannot be read: {error}") from None
        except ValueError as error:
            raise AirflowFailException(f"Smoke-test prompts unusable, nothing was started: {error}") from None
        print(f"smoke test: {len(prompts)} prompt(s) available")

        incumbent = _current_model(inlet_events)
        try:
            start_from = starting_model(settings["tune_from"], params["base_model"], settings["pre_tuned_model"],
                                        incumbent)
        except RunInputError as error:
            raise AirflowFailException(f"Nothing was started: {error}") from None
        print(f"incumbent: {incumbent or 'none yet'}; tuning from {start_from}")
        return {**settings, "split": split and split["split"], "incumbent": incumbent,
                "incumbent_endpoint": incumbent and incumbent["endpoint"], "tune_from_model": start_from}

    inputs = resolve_inputs(ARCHIVE_PREFIX + "/held_out")

    validate = ValidateTuningDatasetOperator(
        task_id="validate_dataset",
        training_dataset=inputs["training_dataset"],
        validation_dataset=inputs["validation_dataset"],
        tuning_task=inputs["task_type"],
        backend=BACKEND,
        tokenizer=TOKENIZER,
        report_dir=ARCHIVE_PREFIX + "/dataset_report",
        base_model="{{ params.base_model }}",
    )
    upload = UploadTuningDatasetOperator(
        task_id="upload_dataset",
        training_dataset=inputs["training_dataset"],
        validation_dataset=inputs["validation_dataset"],
        validation_report=validate.output,
        destination=DATASET_DESTINATION,
        multiple_outputs=True,
    )

    @task.branch
    def recommend_config(report: dict, backend: str, price_table: str, task_type: str, allow_small_dataset: bool,
                         params=None, ti=None) -> str:
        """Google's recommended configuration and the cost estimate; branches on whether to tune."""
        from airflow.sdk.exceptions import AirflowFailException
        from gemini_tuning.estimate import estimate, load_price_table, over_budget
        from gemini_tuning.recommendations import recommend

        training = next(f for f in report["files"] if f["role"] == "training")
        try:
            recommendation = recommend(
                task_type,
                training["examples"],
                class_count=training.get("class_count"),
                epoch_count=params["epoch_count"],
                epoch_sweep=params["epoch_sweep"],
                adapter_size=params["adapter_size"],
                learning_rate_multiplier=params["learning_rate_multiplier"],
                adapter_size_sweep=params.get("adapter_size_sweep") or (),
                learning_rate_multiplier_sweep=params.get("learning_rate_multiplier_sweep") or (),
                allow_small_dataset=allow_small_dataset,
                warnings=[w["message"] for w in report.get("warnings", [])],
            )
        except ValueError as error:
            raise AirflowFailException(f"Nothing was started: {error}") from None
        for reason in recommendation.reasons:
            print(f"recommendation: {reason}")
        cost = estimate(
            base_model=str(params["base_model"]),
            backend=backend,
            training_tokens=training["total_tokens"],
            epoch_counts=recommendation.epoch_counts,
            tokens_counted=training["tokens_counted"],
            price_table=load_price_table(price_table),
        )
        print(cost.describe())
        ti.xcom_push(key="recommendation", value={**recommendation.to_dict(), "estimate": cost.to_dict()})
        if recommendation.proceed and (stop := over_budget(cost, params["max_cost_usd"])):
            raise AirflowFailException(f"Nothing was started: {stop}")
        return "tuning_configs" if recommendation.proceed else "not_enough_data"

    branch = recommend_config(
        validate.output, BACKEND, "{{ var.value.get('gemini_tuning_price_table', '') }}", inputs["task_type"],
        inputs["allow_small_dataset"],
    )
    recommendation = branch["recommendation"]

    @task
    def not_enough_data(recommendation: dict) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("Not enough data to tune:\n" + "\n".join(recommendation["reasons"]))

    @task
    def tuning_configs(recommendation: dict) -> list[dict]:
        """The create calls: one job, or one per adapter size and learning-rate multiplier swept."""
        return recommendation["jobs"]

    configs = tuning_configs(recommendation)
    create_jobs = CreateTuningJobOperator.partial(
        task_id="create_tuning_job",
        base_model=inputs["tune_from_model"],
        training_dataset_uri=upload.output["training_dataset_uri"],
        validation_dataset_uri=upload.output["validation_dataset_uri"],
        tuned_model_display_name=inputs["tuned_model_display_name"],
        description="Tuned by Airflow: {{ dag.dag_id }} / {{ run_id }}",
        location="{{ params.region }}",
        # The slot is held until the job ends, so the pool bounds live jobs, not create calls.
        pool=TUNING_JOBS_POOL,
        wait_for_completion=True,
        poll_interval=5,
        max_poll_interval=30,
        job_timeout=JOB_TIMEOUT.total_seconds(),
    ).expand_kwargs(configs)
    # The job has ended when this runs: it fails on a job that did not succeed and returns the job.
    wait_for_jobs = TuningJobSensor.partial(
        task_id="wait_for_tuning_job",
        location="{{ params.region }}",
        poll_interval=5,
        max_poll_interval=30,
        timeout=JOB_TIMEOUT.total_seconds(),
    ).expand(job_name=create_jobs.output.map(_job_name))

    @task(multiple_outputs=True, trigger_rule="all_done_min_one_success")
    def choose_champion(jobs: list[dict], params=None) -> dict:
        """The checkpoint with the lowest validation loss, of every succeeded job, made its model's default."""
        from gemini_tuning.champion import choose_champion
        from gemini_tuning.hooks.tuning import GenAITuningHook

        hook = GenAITuningHook(location=params["region"])
        champion = choose_champion(hook, [job["name"] for job in jobs])
        for candidate in champion["candidates"]:
            print(f"{candidate['name']}: {candidate['epoch_count']} epochs, final metrics {candidate['final_metrics']}")
        for checkpoint in champion["checkpoints"]:
            print(f"checkpoint {checkpoint['checkpoint_id']} of {checkpoint['name']}: epoch {checkpoint['epoch']}, "
                  f"step {checkpoint['step']}, validation loss {checkpoint['validation_loss']}")
        for skipped in champion["not_considered"]:
            print(f"not considered: {skipped['name']} ended {skipped['state']}")
        print(f"champion: checkpoint {champion['checkpoint_id']} (epoch {champion['epoch']}) of {champion['name']}, "
              f"{champion['judged_by']} {champion['loss']:.4f}: {champion['reason']}")
        if champion["checkpoint_id"] is not None:
            hook.set_default_checkpoint(champion["model"], champion["checkpoint_id"])
            print(f"{champion['model']} now serves checkpoint {champion['checkpoint_id']} on its main endpoint")
        return champion

    champion = choose_champion(create_jobs.output)
    wait_for_jobs >> champion

    smoke_test = SmokeTestOperator(
        task_id="smoke_test",
        tuning_job_name=champion["name"],
        model=champion["endpoint"],  # the chosen checkpoint's own endpoint
        prompts_file=inputs["smoke_test_prompts"],
        validation_dataset_uri=inputs["validation_dataset"],
        max_prompts=inputs["smoke_test_count"],
        concurrency="{{ params.smoke_test_concurrency }}",
        temperature="{{ params.temperature }}",
        top_p="{{ params.top_p }}",
        top_k="{{ params.top_k }}",
        max_output_tokens="{{ params.max_output_tokens }}",
        compare_with_base_model=True,
        incumbent_model=inputs["incumbent_endpoint"],
        require_better_than_base=inputs["require_better_than_base"],
        results_uri=SMOKE_TEST_RESULTS,
        location="{{ params.region }}",
    )
    archive = ArchiveTuningMetricsOperator(
        task_id="archive_metrics",
        tuning_job_name=champion["name"],
        chosen_checkpoint_id=champion["checkpoint_id"],
        archive_prefix=ARCHIVE_PREFIX,
        # The archive runs once the champion exists, whatever the smoke test did: it reads the
        # smoke test's results file if one was written, so a good job's curves are never lost.
        smoke_test_results_uri=SMOKE_TEST_RESULTS,
        trigger_rule="all_done_min_one_success",
        run_summary={
            "recommendation": recommendation,
            "champion": champion,
            "held_out_split": inputs["split"],
            "incumbent": inputs["incumbent"],
            "dataset": upload.output,
            "dataset_report": validate.output,
        },
        location="{{ params.region }}",
    )

    @task.branch(inlets=[TUNED_MODEL])
    def challenge_incumbent(smoke: dict, require_approval: bool, ti=None, inlet_events=None) -> str | list[str]:
        """The challenger against the incumbent on the same prompts: publish (perhaps after approval) or keep."""
        import json

        from gemini_tuning.dataset_checks.source import read_text
        from gemini_tuning.incumbent import PUBLISH, approval_body, verdict

        decided = verdict(smoke, _current_model(inlet_events))
        print(f"{decided['decision']}: {decided['reason']} (scores: {decided['scores']})")
        ti.xcom_push(key="verdict", value=decided)
        if decided["decision"] != PUBLISH:
            return "keep_incumbent"
        if not require_approval:
            return "publish_tuned_model"
        examples = json.loads(read_text(smoke["results_uri"]))["examples"]
        ti.xcom_push(key="approval_body", value=approval_body(decided, examples))
        return ["approve_publish", "publish_tuned_model"]

    decision = challenge_incumbent(smoke_test.output, inputs["require_approval"])

    @task
    def keep_incumbent(decided: dict) -> dict:
        """The challenger lost: nothing is published, the incumbent stays current."""
        print(f"Incumbent {decided['incumbent_model']} kept: {decided['reason']}; scores {decided['scores']}")
        return decided

    approve = ApprovalOperator(
        task_id="approve_publish",
        subject="Publish the model tuned by {{ dag.dag_id }} / {{ run_id }}?",
        body=decision["approval_body"],
        response_timeout=APPROVAL_TIMEOUT,
        defaults=ApprovalOperator.REJECT,
    )

    @task(inlets=[TUNED_MODEL], outlets=[TUNED_MODEL], trigger_rule="none_failed_min_one_success")
    def publish_tuned_model(champion: dict, smoke: dict, archived: dict, inlet_events=None,
                            outlet_events=None) -> dict:
        """Tell downstream pipelines that a new tuned model exists, with what they need to use it.

        This event is also the record of the current model that the next run challenges; checked
        again here, since an approval can wait for hours while another run publishes."""
        from airflow.sdk.exceptions import AirflowFailException
        from gemini_tuning.incumbent import superseded

        changed = superseded(smoke["incumbent_model"], _current_model(inlet_events))
        if changed:
            raise AirflowFailException(f"Not published: {changed}")
        event = {
            "tuning_job": champion["name"],
            "model": champion["model"],
            "checkpoint_id": champion["checkpoint_id"],
            "checkpoint_epoch": champion["epoch"],
            "endpoint": smoke["model"],
            "base_model": smoke["base_model"],
            "epoch_count": champion["epoch_count"],
            "final_metrics": {name: point["value"] for name, point in champion["final_metrics"].items()},
            "smoke_test_score": smoke["tuned"]["score"],
            "base_model_score": smoke["base"]["score"] if smoke["base"] else None,
            "incumbent_score": smoke["incumbent"]["score"] if smoke["incumbent"] else None,
            "archive": archived,
        }
        outlet_events[TUNED_MODEL].extra = event
        return event

    @task(trigger_rule="none_failed")
    def outcome(decided: dict, published: dict | None) -> dict:
        """What the run did with its model: published, incumbent kept, or rejected by the approver.

        A verdict to publish with no publish (and nothing failed) means the approver rejected it."""
        from gemini_tuning.incumbent import PUBLISH

        if published:
            said = f"published {published['model']}"
        elif decided["decision"] == PUBLISH:
            said = f"not published: the approver rejected it ({decided['reason']})"
        else:
            said = f"not published, incumbent {decided['incumbent_model']} kept: {decided['reason']}"
        print(said)
        return {"said": said, "published": bool(published), "verdict": decided}

    chain(upload, branch)
    branch >> not_enough_data(recommendation)
    smoke_test >> archive
    kept = keep_incumbent(decision["verdict"])
    published = publish_tuned_model(champion, smoke_test.output, archive.output)
    decision >> [kept, approve, published]
    approve >> published
    kept >> outcome(decision["verdict"], published)


gemini_supervised_tuning()
