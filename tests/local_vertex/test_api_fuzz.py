"""The API fuzzed with schemathesis from the service's own OpenAPI document (request bodies
documented as Google's schemas): no 5xx, no hang, every error in Google's error shape.

Three passes over every /v1 operation: valid-looking requests (positive), invalid ones
(negative), and valid-looking ones aimed at a real job, its tensorboard and its model, so that
handlers are reached past the lookup. The model calls are not aimed at a real model: what an
answer may cost is bounded by generation's own limits, not by this test. Bounded: a fixed
number of examples per operation and pass, a per-request time-out, loopback only. The counts
are printed (pytest -s). Hypothesis drives each operation's strategy directly: the service is
a pytest fixture, and schemathesis' own pytest plugin does not run on this pytest.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.fixtures.local_vertex import chat_rows
from tests.local_vertex.conformance import error_problems

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 10
REQUEST_TIMEOUT_S = 60
MODEL_CALLS = (":generateContent", ":streamGenerateContent", ":countTokens", ":computeTokens")


@pytest.fixture(scope="module")
def real_ids(local_vertex):
    """Path parameters naming a real succeeded job and what it made."""
    with local_vertex.http() as http:
        job = http.post(f"/v1/{local_vertex.parent}/tuningJobs", json={"baseModel": "gemini-2.5-flash",
                        "supervisedTuningSpec": {"trainingDatasetUri": local_vertex.write_dataset(
                            "fuzz-train.jsonl", chat_rows(8)), "hyperParameters": {"epochCount": 1}}}).json()
    job = local_vertex.wait_for_state(job["name"], {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"})
    job_id = job["name"].rsplit("/", 1)[1]
    return {"project": local_vertex.project, "location": local_vertex.location, "job_id": job_id,
            "tensorboard_id": job_id, "experiment_id": job_id, "run_id": "train", "model_id": job_id}


def test_no_server_error_no_hang_and_googles_error_shape(local_vertex, real_ids):
    with local_vertex.http() as http:
        document = http.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document).include(path_regex="^/v1/")  # /v1beta1: the same router
    headers = {"Authorization": f"Bearer {local_vertex.token}"}
    statuses: Counter = Counter()
    failures: list[str] = []
    unsatisfiable: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    passes = [("positive", operation, operation.as_strategy()) for operation in operations]
    passes += [("negative", operation, operation.as_strategy(schemathesis.GenerationMode.NEGATIVE))
               for operation in operations if len(operation.query) or len(operation.body)]
    passes += [("real ids", operation, operation.as_strategy(path_parameters={
                   name: value for name, value in real_ids.items() if "{" + name + "}" in operation.path}))
               for operation in operations if not operation.path.endswith(MODEL_CALLS)]

    for mode, operation, strategy in passes:
        @given(case=strategy)
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            response = case.call(base_url=local_vertex.base_url, headers=headers, timeout=REQUEST_TIMEOUT_S)
            statuses[response.status_code] += 1
            where = f"{mode}: {case.method} {case.formatted_path} {case.query or ''} {str(case.body)[:200]}"
            if response.status_code >= 500:
                failures.append(f"{where}: {response.status_code} {response.text[:300]}")
            elif response.status_code >= 400:
                problems = error_problems(response.json(), response.status_code)
                if problems:
                    failures.append(f"{where}: {problems}")

        try:
            fuzz()
        except Unsatisfiable:  # nothing of this operation can be made invalid
            assert mode == "negative", f"{mode}: {operation.method} {operation.path}: no case generated"
            unsatisfiable.append(f"{operation.method.upper()} {operation.path}")

    total = sum(statuses.values())
    print(f"\nschemathesis: {total} requests in {len(passes)} operation passes over {len(operations)} operations "
          f"of /v1 (at most {EXAMPLES_PER_OPERATION} examples each): {dict(sorted(statuses.items()))}; "
          f"5xx: {sum(n for status, n in statuses.items() if status >= 500)}; "
          f"{len(unsatisfiable)} operations have no invalid form to generate")
    assert not failures, "\n".join(failures[:20])
    assert total >= len(passes)
