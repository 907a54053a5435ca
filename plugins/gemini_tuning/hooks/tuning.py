"""
Hooks that own a google-genai client in Vertex mode for supervised tuning jobs.

One connection (``gemini_tuning_default``, conn_type ``google_cloud_platform``) decides the
backend, by its ``base_url`` extra alone: without one, Vertex AI with the Google provider's usual
credentials (a password on such a connection is not a token and is ignored); with one, the
project's local Vertex service, authenticated by a static token (the connection password or
extra ``static_token``). Only this module knows the difference; operators and triggers call the
same methods for both.

Every call but create retries with back-off on 429, 5xx and time-outs (google-genai's own
``HttpRetryOptions``); create makes one attempt, since a retried create could start a second paid
job (the create operator's retry looks the job up by its labels instead).

google-genai and google-cloud-aiplatform are heavy: they are imported inside methods only, so
DAG files and the triggerer import this module cheaply.
"""

from __future__ import annotations

import asyncio
import itertools
import warnings
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.google.common.hooks.base_google import GoogleBaseAsyncHook, GoogleBaseHook
from gemini_tuning.jobs import DEFAULT_CONN_ID, TUNING_METRICS

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.genai import Client
    from google.genai.types import GenerateContentConfig, GenerateContentResponse, Model, TuningJob

DEFAULT_LOCATION = "us-central1"
DEFAULT_REQUEST_TIMEOUT_SECONDS = 300
# Attempts (the first included) and back-off of the calls that are safe to repeat.
RETRY_ATTEMPTS = 4
RETRY_INITIAL_DELAY_SECONDS = 1.0
RETRY_MAX_DELAY_SECONDS = 30.0
# A listing reads at most this many jobs unless told otherwise: one project can hold thousands.
DEFAULT_MAX_LISTED_JOBS = 1000

def job_region(job: str) -> str | None:
    """The region a full job name (``projects/P/locations/L/tuningJobs/ID``) names; None for a bare id."""
    parts = job.split("/")
    if len(parts) >= 4 and parts[0] == "projects" and parts[2] == "locations":
        return parts[3]
    return None


def is_transient_error(error: BaseException) -> bool:
    """True for errors worth retrying: server errors (5xx), throttling (429), time-outs, dropped connections."""
    import aiohttp
    import httpx

    if isinstance(error, (TimeoutError, httpx.TransportError, aiohttp.ClientError)):
        return True
    from google.genai.errors import APIError

    return isinstance(error, APIError) and (error.code >= 500 or error.code == 429)


class GenAITuningHook(GoogleBaseHook):
    """
    Create, read, list and cancel supervised tuning jobs, choose the tuned model's default
    checkpoint, and call the tuned model, with google-genai.

    :param gcp_conn_id: The connection to use; see the module docstring for its two shapes.
    :param impersonation_chain: Optional service account to impersonate (Vertex only).
    :param project_id: Overrides the connection's ``project`` extra.
    :param location: Overrides the connection's ``location`` extra (default ``us-central1``).
    """

    default_conn_name = DEFAULT_CONN_ID
    hook_name = "Gemini tuning (Vertex AI or local service)"

    def __init__(
        self,
        gcp_conn_id: str = DEFAULT_CONN_ID,
        impersonation_chain: str | Sequence[str] | None = None,
        project_id: str | None = None,
        location: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id, impersonation_chain=impersonation_chain, **kwargs)
        self._project_id_override = project_id
        self._location_override = location
        self._regional_hooks: dict[str, GenAITuningHook] = {}

    # -- connection ---------------------------------------------------------------------------

    @cached_property
    def base_url(self) -> str | None:
        """The local service's root URL, or None for Vertex AI's own endpoints."""
        url = self._get_field("base_url")
        return url.rstrip("/") if url else None

    @cached_property
    def static_token(self) -> str | None:
        """The local service's bearer token (extra ``static_token`` or the password); None on Vertex AI."""
        if not self.base_url:
            return None
        return self._get_field("static_token") or self.get_connection(self.gcp_conn_id).password or None

    @cached_property
    def location(self) -> str:
        return self._location_override or self._get_field("location") or DEFAULT_LOCATION

    @property
    def project_id(self) -> str:
        return self._project_id_override or super().project_id

    def get_credentials_and_project_id(self) -> tuple[Credentials, str | None]:
        """A static bearer token when the connection has one, else the provider's usual credentials."""
        if not self.static_token:
            return super().get_credentials_and_project_id()
        from google.oauth2.credentials import Credentials as BearerCredentials

        return BearerCredentials(token=self.static_token), self._get_field("project")

    @cached_property
    def request_timeout_seconds(self) -> float:
        return float(self._get_field("timeout") or DEFAULT_REQUEST_TIMEOUT_SECONDS)

    def get_genai_client(self) -> Client:
        """A google-genai client in Vertex mode that retries transient errors (create opts out per call)."""
        from google import genai
        from google.genai.types import HttpOptions, HttpRetryOptions

        credentials, _ = self.get_credentials_and_project_id()
        return genai.Client(
            vertexai=True,
            project=self.project_id,
            location=self.location,
            credentials=credentials,
            http_options=HttpOptions(
                base_url=self.base_url,
                api_version="v1",
                timeout=int(self.request_timeout_seconds * 1000),
                retry_options=HttpRetryOptions(
                    attempts=RETRY_ATTEMPTS,
                    initial_delay=RETRY_INITIAL_DELAY_SECONDS,
                    max_delay=RETRY_MAX_DELAY_SECONDS,
                ),
            ),
        )

    @cached_property
    def client(self) -> Client:
        return self.get_genai_client()

    # -- names and links ----------------------------------------------------------------------

    def qualify_job_name(self, job: str) -> str:
        """Accept a job id or a full resource name; return ``projects/P/locations/L/tuningJobs/ID``."""
        if job.startswith("projects/"):
            return job
        return f"projects/{self.project_id}/locations/{self.location}/tuningJobs/{job}"

    def for_job(self, job: str) -> GenAITuningHook:
        """
        The hook to reach ``job`` with: this one, or one for the region its full name names.

        Vertex serves a job only from its own region's endpoint, so a full name from another
        region than the connection's must be called there.
        """
        region = job_region(job)
        if region is None or region == self.location:
            return self
        if region not in self._regional_hooks:
            self._regional_hooks[region] = GenAITuningHook(
                gcp_conn_id=self.gcp_conn_id,
                impersonation_chain=self.impersonation_chain,
                project_id=self._project_id_override,
                location=region,
            )
        return self._regional_hooks[region]

    def job_url(self, job_name: str) -> str:
        """Where a person looks at the job: the Vertex console page, or the local service's resource URL."""
        if self.base_url:
            return f"{self.base_url}/v1/{job_name}"
        parts = job_name.split("/")  # projects/P/locations/L/tuningJobs/ID
        project, location, job_id = parts[1], parts[3], parts[5]
        return (
            "https://console.cloud.google.com/vertex-ai/generative/language/locations/"
            f"{location}/tuning/tuningJob/{job_id}?project={quote(project)}"
        )

    # -- tuning jobs ----------------------------------------------------------------------------

    def create_tuning_job(
        self,
        *,
        base_model: str,
        training_dataset_uri: str,
        validation_dataset_uri: str | None = None,
        tuned_model_display_name: str | None = None,
        description: str | None = None,
        epoch_count: int | None = None,
        adapter_size: str | None = None,
        learning_rate_multiplier: float | None = None,
        labels: dict[str, str] | None = None,
        checkpoint_id: str | None = None,
    ) -> TuningJob:
        """
        Start a supervised tuning job; hyperparameters left as None get the service's recommendation.

        A ``base_model`` naming a tuned model (``projects/.../models/ID``) continues from it
        (google-genai sends it as ``preTunedModel``, with ``checkpoint_id`` if given): the result
        is the next version of that model.
        """
        from google.genai.types import CreateTuningJobConfig, TuningDataset, TuningValidationDataset

        config = CreateTuningJobConfig(
            # Not `validation_dataset_uri`: google-genai sends that field for reinforcement tuning only.
            validation_dataset=(
                TuningValidationDataset(gcs_uri=validation_dataset_uri) if validation_dataset_uri else None
            ),
            tuned_model_display_name=tuned_model_display_name,
            description=description,
            epoch_count=epoch_count,
            adapter_size=adapter_size,
            learning_rate_multiplier=learning_rate_multiplier,
            labels=labels,
            pre_tuned_model_checkpoint_id=checkpoint_id,
        )
        from google.genai.types import HttpOptions, HttpRetryOptions

        config.http_options = HttpOptions(retry_options=HttpRetryOptions(attempts=1))  # never a second job
        with warnings.catch_warnings():  # google-genai flags all of tunings as experimental, on every call
            warnings.filterwarnings("ignore", message="The SDK's tuning implementation is experimental")
            return self.client.tunings.tune(
                base_model=base_model,
                training_dataset=TuningDataset(gcs_uri=training_dataset_uri),
                config=config,
            )

    def get_tuning_job(self, name: str) -> TuningJob:
        hook = self.for_job(name)
        return hook.client.tunings.get(name=hook.qualify_job_name(name))

    def list_tuning_jobs(
        self,
        *,
        filter: str | None = None,
        page_size: int | None = None,
        max_jobs: int | None = DEFAULT_MAX_LISTED_JOBS,
    ) -> list[TuningJob]:
        """
        Jobs matching the standard list ``filter`` (AIP-160, e.g. ``labels.team="ml"``), page by page.

        Reading stops after ``max_jobs`` (None: every page), so a busy project cannot make one
        call read thousands of jobs.
        """
        from google.genai.types import ListTuningJobsConfig

        pager = self.client.tunings.list(config=ListTuningJobsConfig(filter=filter, page_size=page_size))
        return list(itertools.islice(pager, max_jobs))

    def list_tuning_jobs_page(
        self, *, filter: str | None = None, page_size: int = 50, page_token: str | None = None
    ) -> tuple[list[TuningJob], str | None]:
        """One page of the listing and the next page's token (None on the last): for paged views."""
        from google.genai.types import ListTuningJobsConfig

        pager = self.client.tunings.list(
            config=ListTuningJobsConfig(filter=filter, page_size=page_size, page_token=page_token)
        )
        return pager.page, pager.config.get("page_token") or None

    def find_tuning_jobs_by_labels(self, labels: dict[str, str]) -> list[TuningJob]:
        """
        Jobs carrying all of ``labels``, newest first.

        The server-side filter keeps the listing short; the labels are checked again here so a
        server that ignores part of the filter cannot make us adopt someone else's job.
        """
        label_filter = " AND ".join(f'labels.{key}="{value}"' for key, value in sorted(labels.items()))
        jobs = [
            job
            for job in self.list_tuning_jobs(filter=label_filter, max_jobs=None)
            if all((job.labels or {}).get(key) == value for key, value in labels.items())
        ]
        return sorted(jobs, key=lambda job: job.create_time.timestamp() if job.create_time else 0.0, reverse=True)

    def cancel_tuning_job(self, name: str) -> None:
        hook = self.for_job(name)
        hook.client.tunings.cancel(name=hook.qualify_job_name(name))

    # -- the tuned model --------------------------------------------------------------------------

    def generate_content(
        self,
        *,
        model: str,
        contents: list[dict[str, Any]] | str,
        system_instruction: str | None = None,
        generation_config: dict[str, Any] | None = None,
    ) -> GenerateContentResponse:
        """
        Call ``generateContent`` on a tuned model's endpoint (``projects/.../endpoints/ID``) or a base model.

        ``generation_config`` takes Vertex's camelCase keys (temperature, topP, topK, maxOutputTokens, ...).
        """
        config = _content_config(system_instruction, generation_config)
        return self.client.models.generate_content(model=model, contents=contents, config=config)

    def generate_content_stream(
        self,
        *,
        model: str,
        contents: list[dict[str, Any]] | str,
        system_instruction: str | None = None,
        generation_config: dict[str, Any] | None = None,
    ) -> Iterator[GenerateContentResponse]:
        """``streamGenerateContent``: the answer in chunks as it is generated; arguments as ``generate_content``."""
        config = _content_config(system_instruction, generation_config)
        return self.client.models.generate_content_stream(model=model, contents=contents, config=config)

    # -- checkpoints -------------------------------------------------------------------------------

    @staticmethod
    def list_checkpoints(job: TuningJob) -> list[dict[str, Any]]:
        """
        The job's checkpoints in training order: ``{checkpoint_id, epoch, step, endpoint}``.

        Vertex lists them on the job (``tunedModel.checkpoints``) as each is saved. A job that
        lists none (intermediate checkpoints not supported) has one: its final model, with
        checkpoint id None.
        """
        tuned = job.tuned_model
        listed = [
            {"checkpoint_id": c.checkpoint_id, "epoch": c.epoch, "step": c.step, "endpoint": c.endpoint}
            for c in (tuned.checkpoints or [] if tuned else [])
        ]
        if listed or not (tuned and tuned.endpoint):
            return sorted(listed, key=lambda c: c["step"] or 0)
        spec = job.supervised_tuning_spec
        epochs = spec.hyper_parameters.epoch_count if spec and spec.hyper_parameters else None
        return [{"checkpoint_id": None, "epoch": epochs, "step": None, "endpoint": tuned.endpoint}]

    def get_tuned_model(self, model: str) -> Model:
        """The tuned Model (``projects/P/locations/L/models/ID[@VERSION]``), with its checkpoints and default."""
        hook = self.for_job(model)
        return hook.client.models.get(model=model)

    def set_default_checkpoint(self, model: str, checkpoint_id: str) -> Model:
        """
        Make ``checkpoint_id`` the one the model's main endpoint serves.

        google-genai's ``models.update`` PATCHes the Model with its ``defaultCheckpointId``; the
        update retries like every call but create (setting the same default twice is harmless).
        """
        from google.genai.types import UpdateModelConfig

        hook = self.for_job(model)
        return hook.client.models.update(model=model, config=UpdateModelConfig(default_checkpoint_id=checkpoint_id))

    # -- metrics ---------------------------------------------------------------------------------

    def read_metric_series(self, job: TuningJob) -> list[dict[str, Any]]:
        """
        The job's six tuning series as tidy rows ``{metric, step, value, wall_time}``.

        Local service: its TensorBoard-style time-series read. Vertex AI: the job's experiment,
        read through google-cloud-aiplatform.
        """
        if not job.experiment:
            return []
        if self.base_url:
            return self._read_local_series(job.experiment)
        return self._read_vertex_experiment(job.experiment)

    def local_series_request(self, experiment: str) -> dict[str, Any]:
        """The HTTP request (url, params, headers) that reads the local service's tuning series."""
        return {
            "url": f"{self.base_url}/v1/{experiment}/runs/train/timeSeries:batchRead",
            "params": [("timeSeries", metric.lstrip("/")) for metric in TUNING_METRICS],  # series ids
            "headers": {"Authorization": f"Bearer {self.static_token}"} if self.static_token else {},
        }

    def _read_local_series(self, experiment: str) -> list[dict[str, Any]]:
        import httpx

        response = httpx.get(**self.local_series_request(experiment), timeout=self.request_timeout_seconds)
        response.raise_for_status()
        return series_rows_from_batch_read(response.json())

    def _read_vertex_experiment(self, experiment: str) -> list[dict[str, Any]]:
        """Read every run of the Vertex experiment the tuning job logged to, as tidy rows."""
        import pandas as pd
        from google.cloud import aiplatform

        credentials, _ = self.get_credentials_and_project_id()
        experiment_id = experiment.rstrip("/").split("/")[-1]
        runs = aiplatform.ExperimentRun.list(
            experiment=experiment_id,
            project=self.project_id,
            location=self.location,
            credentials=credentials,
        )
        rows: list[dict[str, Any]] = []
        for run in runs:
            frame = run.get_time_series_data_frame()  # columns: step, wall_time, one per series
            for column in frame.columns.difference(["step", "wall_time"]):
                metric = "/" + str(column).lstrip("/")
                if metric not in TUNING_METRICS:
                    continue
                for step, wall_time, value in frame[["step", "wall_time", column]].dropna().itertuples(index=False):
                    rows.append(
                        {
                            "metric": metric,
                            "step": int(step),
                            "value": float(value),
                            "wall_time": pd.Timestamp(wall_time).isoformat(),
                        }
                    )
        return rows


def _content_config(system_instruction: str | None, generation_config: dict[str, Any] | None) -> GenerateContentConfig:
    from google.genai.types import GenerateContentConfig

    return GenerateContentConfig.model_validate(
        {
            **(generation_config or {}),
            "system_instruction": system_instruction,
            "automatic_function_calling": {"disable": True},  # plain prompts: no tools to call
        }
    )


def series_rows_from_batch_read(body: dict[str, Any]) -> list[dict[str, Any]]:
    """
    Turn a TensorBoard ``batchRead`` answer into tidy rows.

    Shape (Vertex's BatchReadTensorboardTimeSeriesDataResponse): ``{"timeSeriesData": [
    {"tensorboardTimeSeriesId": "train_total_loss", "values": [{"step": "1",
    "wallTime": "...", "scalar": {"value": 2.3}}]}]}``.
    """
    rows = []
    for series in body.get("timeSeriesData", []):
        metric = "/" + series["tensorboardTimeSeriesId"].rsplit("/", 1)[-1]  # the id is the name without "/"
        for point in series.get("values", []):
            rows.append(
                {
                    "metric": metric,
                    "step": int(point["step"]),
                    "value": float(point["scalar"]["value"]),
                    "wall_time": point.get("wallTime"),
                }
            )
    return rows


class GenAITuningAsyncHook(GoogleBaseAsyncHook):
    """The async path for triggers: the same connection and client, through google-genai's ``client.aio``."""

    sync_hook_class = GenAITuningHook

    def __init__(self, gcp_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id, **kwargs)

    # Blocking work (reading the connection, building clients) runs through asyncio.to_thread, not
    # asgiref's sync_to_async as in the base class: sync_to_async drops a cancellation's message,
    # and the triggerer calls ``on_kill`` (which cancels the job) only when that message says a
    # user stopped the task. A kill that landed during such a call left the job running.

    async def get_sync_hook(self) -> GenAITuningHook:
        if not self._sync_hook:
            self._sync_hook = await asyncio.to_thread(self.sync_hook_class, **self._hook_kwargs)
        return self._sync_hook

    async def _client(self, job: str) -> Any:
        """The sync hook for ``job``'s region and its async client (built off the event loop)."""
        sync_hook = await self.get_sync_hook()

        def build() -> tuple[GenAITuningHook, Any]:
            hook = sync_hook.for_job(job)
            return hook, hook.client.aio

        return await asyncio.to_thread(build)

    async def get_tuning_job(self, name: str) -> TuningJob:
        hook, client = await self._client(name)
        return await client.tunings.get(name=hook.qualify_job_name(name))

    async def cancel_tuning_job(self, name: str) -> None:
        hook, client = await self._client(name)
        await client.tunings.cancel(name=hook.qualify_job_name(name))

    async def latest_metrics(self, job: TuningJob) -> dict[str, dict[str, Any]] | None:
        """
        Each series' last point (``{metric: {step, value, wall_time}}``) for progress logs, or None.

        Only the local service's series are read here: Vertex's experiment API is synchronous and
        heavy, so a Vertex job's progress is logged by its state alone.
        """
        hook = await self.get_sync_hook()
        if not (hook.base_url and job.experiment):
            return None
        import httpx

        async with httpx.AsyncClient(timeout=hook.request_timeout_seconds) as http:
            response = await http.get(**hook.local_series_request(job.experiment))
        response.raise_for_status()
        latest: dict[str, dict[str, Any]] = {}
        for row in series_rows_from_batch_read(response.json()):
            if row["step"] >= latest.get(row["metric"], {}).get("step", -1):
                latest[row["metric"]] = row
        return latest or None
