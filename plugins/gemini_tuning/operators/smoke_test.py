"""Smoke test of a tuned model: a few prompts through generateContent, answers checked and scored."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from gemini_tuning.dataset_checks.source import GCS_CONN_ID
from gemini_tuning.jobs import SUCCEEDED, job_state
from gemini_tuning.operators.base import GenAITuningBaseOperator
from gemini_tuning.prompts import SmokePrompt, load_smoke_prompts, sample

if TYPE_CHECKING:
    from airflow.sdk import Context

SCORINGS = ("exact_match", "contains")
# 32 in flight: the local generation process decodes each model's waiting requests together (up
# to 32), so each batch holds about 16 rows of the tuned and 16 of the base model; a decoding
# step costs about the same for 1 row as for 16 on a CPU.
DEFAULT_CONCURRENCY = 32
PROGRESS_INTERVAL_SECONDS = 10.0
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Compare answers as a reader would: case, surrounding spaces and final full stop do not count."""
    return _SPACES.sub(" ", text).strip().rstrip(".").strip().casefold()


def is_correct(answer: str, expected: str, scoring: str) -> bool:
    if scoring == "exact_match":
        return normalize(answer) == normalize(expected)
    return normalize(expected) in normalize(answer)


class SmokeTestOperator(GenAITuningBaseOperator):
    """
    Send prompts to the tuned model (and optionally its base model and the incumbent) and check the answers.

    Prompts come from ``prompts``, ``prompts_file`` or a seeded sample of ``validation_dataset_uri``
    (the first one given), at most ``max_prompts``. They go out ``concurrency`` at a time, to the
    tuned and the base model together (each call retries transient errors in the hook), and the
    progress of both is logged at least every 10 seconds. The test fails when an answer of the
    tuned model is empty, when its score on the prompts with an expected answer is below
    ``min_score``, or, with ``require_better_than_base``, below the base model's score. The
    results (scores and every answer) are written to ``results_uri`` before any failure; the
    return value (XCom) keeps the scores only.

    :param tuning_job_name: Succeeded tuning job whose tuned endpoint and base model are used. (templated)
    :param model: Model or endpoint to call instead of the job's tuned endpoint. (templated)
    :param base_model: Base model to compare with; defaults to the job's base model. (templated)
    :param compare_with_base_model: Also send the prompts to the base model and report both.
    :param incumbent_model: Model or endpoint in use now, asked the same prompts to compare with. (templated)
    :param prompts: Prompts as strings or ``{"prompt", "expected"}`` objects, e.g. from Params. (templated)
    :param prompts_file: JSONL (or .txt) file of prompts: a path, file:// or gs:// URI. (templated)
    :param validation_dataset_uri: Validation JSONL to sample prompts and expected answers from. (templated)
    :param max_prompts: Largest number of prompts sent. (templated)
    :param seed: Seed of the sample, so a retry sends the same prompts.
    :param temperature: Sampling temperature; 0 is greedy. (templated)
    :param top_p: Top-p of sampling. (templated)
    :param top_k: Top-k of sampling. (templated)
    :param max_output_tokens: Longest answer in tokens. (templated)
    :param scoring: ``exact_match`` or ``contains`` (the expected answer appears in the answer). (templated)
    :param min_score: Smallest accepted share of correct answers, 0 to 1. (templated)
    :param require_better_than_base: Fail when the tuned model scores below the base model. (templated)
    :param concurrency: Prompts in flight at once, both models together.
    :param results_uri: Optional JSON file (path, file:// or gs://) for the scores and every answer. (templated)
    :param storage_conn_id: Connection for gs:// prompts and results (with ``impersonation_chain``).
    """

    template_fields: Sequence[str] = (
        *GenAITuningBaseOperator.connection_fields,
        "tuning_job_name",
        "model",
        "base_model",
        "incumbent_model",
        "prompts",
        "prompts_file",
        "validation_dataset_uri",
        "max_prompts",
        "temperature",
        "top_p",
        "top_k",
        "max_output_tokens",
        "scoring",
        "min_score",
        "require_better_than_base",
        "results_uri",
        "concurrency",
    )

    def __init__(
        self,
        *,
        tuning_job_name: str | None = None,
        model: str | None = None,
        base_model: str | None = None,
        compare_with_base_model: bool = True,
        incumbent_model: str | None = None,
        prompts: list[Any] | None = None,
        prompts_file: str | None = None,
        validation_dataset_uri: str | None = None,
        max_prompts: int | str = 20,
        seed: int = 0,
        temperature: float | str | None = 0.0,
        top_p: float | str | None = None,
        top_k: int | str | None = None,
        max_output_tokens: int | str | None = 64,
        scoring: str = "exact_match",
        min_score: float | str = 0.0,
        require_better_than_base: bool | str = False,
        concurrency: int = DEFAULT_CONCURRENCY,
        results_uri: str | None = None,
        storage_conn_id: str = GCS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tuning_job_name = tuning_job_name
        self.model = model
        self.base_model = base_model
        self.compare_with_base_model = compare_with_base_model
        self.incumbent_model = incumbent_model
        self.prompts = prompts
        self.prompts_file = prompts_file
        self.validation_dataset_uri = validation_dataset_uri
        self.max_prompts = max_prompts
        self.seed = seed
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.max_output_tokens = max_output_tokens
        self.scoring = scoring
        self.min_score = min_score
        self.require_better_than_base = require_better_than_base
        self.concurrency = concurrency
        self.results_uri = results_uri
        self.storage_conn_id = storage_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {self.scoring!r}")
        if int(self.concurrency) < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency!r}")
        tuned_model, base_model = self._models()
        incumbent_model = self.incumbent_model or None
        models = {"tuned": tuned_model, "base": base_model, "incumbent": incumbent_model}
        models = {role: model for role, model in models.items() if model}
        prompts = sample(self._load_prompts(), int(self.max_prompts), self.seed)
        self.log.info("Smoke test: %d prompt(s) to %s", len(prompts), models)

        started = time.monotonic()
        answers = self._ask(prompts, models)
        elapsed = time.monotonic() - started
        scores = {role: self._summary(prompts, answers[role], elapsed) for role in models}
        results = {
            "model": tuned_model,
            "base_model": base_model,
            "incumbent_model": incumbent_model,
            "scoring": self.scoring,
            "min_score": float(self.min_score),
            "generation_config": self._generation_config(),
            "prompt_count": len(prompts),
            "tuned": scores["tuned"],
            "base": scores.get("base"),
            "incumbent": scores.get("incumbent"),
        }
        examples = [
            {
                "prompt": prompt.text,
                "expected": prompt.expected,
                **{f"{role}_answer": answers[role][index] for role in models},
            }
            for index, prompt in enumerate(prompts)
        ]
        for role, summary in scores.items():
            self.log.info("%s model: %s", role.capitalize(), summary)
        if self.results_uri:
            results["results_uri"] = str(self.results_uri)
            self._write_results({**results, "examples": examples})
        self._check(results, examples)
        return results

    def _load_prompts(self) -> list[SmokePrompt]:
        return load_smoke_prompts(
            prompts=self.prompts,
            prompts_file=self.prompts_file,
            validation_dataset_uri=self.validation_dataset_uri,
            storage_conn_id=self.storage_conn_id,
            impersonation_chain=self.impersonation_chain,
        )

    def _write_results(self, results: dict[str, Any]) -> None:
        from gemini_tuning.dataset_checks.source import write_file

        data = json.dumps(results, indent=1, ensure_ascii=False)
        written = write_file(
            str(self.results_uri),
            data,
            content_type="application/json",
            gcp_conn_id=self.storage_conn_id,
            impersonation_chain=self.impersonation_chain,
        )
        self.log.info("Smoke-test answers written to %s", written)

    def _models(self) -> tuple[str, str | None]:
        """The tuned model to test and the base model to compare with (None: no comparison)."""
        job = None
        if self.tuning_job_name:
            job = self.hook.get_tuning_job(self.tuning_job_name)
            if job_state(job) != SUCCEEDED:
                raise AirflowException(f"Tuning job {job.name} is {job_state(job)}: there is no tuned model to test")
        tuned_model = self.model or (job and job.tuned_model and job.tuned_model.endpoint)
        if not tuned_model:
            raise ValueError("Give tuning_job_name (a succeeded job) or model: there is no model to test")
        # A continued job names its model's base under preTunedModel instead of baseModel.
        pre_tuned = job and job.pre_tuned_model
        base_model = self.base_model or (job and (job.base_model or (pre_tuned and pre_tuned.base_model)))
        return tuned_model, base_model if self.compare_with_base_model else None

    def _generation_config(self) -> dict[str, Any]:
        casts = {"temperature": float, "topP": float, "topK": int, "maxOutputTokens": int}
        values = {
            "temperature": self.temperature,
            "topP": self.top_p,
            "topK": self.top_k,
            "maxOutputTokens": self.max_output_tokens,
        }
        return {key: casts[key](value) for key, value in values.items() if value not in (None, "")}

    def _ask(self, prompts: list[SmokePrompt], models: dict[str, str]) -> dict[str, list[str]]:
        """Every model's answer to every prompt by role, ``concurrency`` calls at a time, with progress logs."""
        answers: dict[str, list[str | None]] = {role: [None] * len(prompts) for role in models}
        correct = dict.fromkeys(models, 0)
        lock = threading.Lock()
        config = self._generation_config()
        self.hook.client  # build the client once, before the threads share it

        def ask(role: str, index: int) -> None:
            prompt = prompts[index]
            response = self.hook.generate_content(
                model=models[role],
                contents=prompt.contents,
                system_instruction=prompt.system_instruction,
                generation_config=config,
            )
            # A NUL in an answer would make it unstorable on PostgreSQL (JSONB refuses it).
            answer = (response.text or "").replace("\x00", "")
            with lock:
                answers[role][index] = answer
                if prompt.expected is not None and is_correct(answer, prompt.expected, self.scoring):
                    correct[role] += 1

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=int(self.concurrency), thread_name_prefix="smoke_test") as pool:
            pending = {pool.submit(ask, role, index) for index in range(len(prompts)) for role in models}
            while pending:
                done, pending = wait(pending, timeout=PROGRESS_INTERVAL_SECONDS, return_when=FIRST_EXCEPTION)
                for future in done:
                    if future.exception():
                        for other in pending:
                            other.cancel()
                        raise future.exception()
                with lock:
                    progress = "; ".join(
                        f"{role} {sum(a is not None for a in answers[role])}/{len(prompts)} answered, "
                        f"{correct[role]} correct"
                        for role in models
                    )
                self.log.info("Smoke test after %.0f s: %s", time.monotonic() - started, progress)
        return {role: [answer or "" for answer in texts] for role, texts in answers.items()}

    def _summary(self, prompts: list[SmokePrompt], answers: list[str], elapsed: float) -> dict[str, Any]:
        """Scores of one model; ``seconds_per_prompt`` is wall time over prompts (both models ran together)."""
        expected = [(answer, p.expected) for answer, p in zip(answers, prompts) if p.expected is not None]
        correct = sum(is_correct(answer, wanted, self.scoring) for answer, wanted in expected)
        return {
            "answered": sum(1 for answer in answers if answer.strip()),
            "empty_answers": sum(1 for answer in answers if not answer.strip()),
            "scored": len(expected),
            "correct": correct,
            "score": correct / len(expected) if expected else None,
            "seconds_per_prompt": round(elapsed / len(prompts), 3) if prompts else 0.0,
        }

    def _check(self, results: dict[str, Any], examples: list[dict[str, Any]]) -> None:
        tuned, base = results["tuned"], results["base"]
        failures = []
        if tuned["empty_answers"]:
            empty = [ex["prompt"] for ex in examples if not ex["tuned_answer"].strip()]
            failures.append(f"{tuned['empty_answers']} empty answer(s), first to: {empty[0]!r}")
        if tuned["score"] is not None and tuned["score"] < float(self.min_score):
            failures.append(
                f"{self.scoring} score {tuned['score']:.3f} is below the threshold {float(self.min_score):.3f}"
            )
        if _truthy(self.require_better_than_base) and base and tuned["score"] is not None and base["score"] is not None:
            if tuned["score"] < base["score"]:
                failures.append(f"tuned score {tuned['score']:.3f} is below the base model's {base['score']:.3f}")
        if failures:
            # A retry would send the same prompts to the same model: fail without retrying.
            raise AirflowFailException(f"Smoke test of {results['model']} failed: " + "; ".join(failures))


def _truthy(value: bool | str) -> bool:
    """Templated booleans arrive as strings unless the DAG renders native objects."""
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")
