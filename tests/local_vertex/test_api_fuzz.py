"""The API fuzzed with schemathesis from the service's own OpenAPI document (request bodies
documented as Google's schemas): no 5xx, no hang, every error in Google's error shape.

Bounded: a fixed number of examples per operation, a per-request time-out, loopback only. The
counts are printed (pytest -s). Hypothesis drives each operation's strategy directly: the
service is a pytest fixture, and schemathesis' own pytest plugin does not run on this pytest.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.local_vertex.conformance import error_problems

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 25
REQUEST_TIMEOUT_S = 60


def test_no_server_error_no_hang_and_googles_error_shape(local_vertex):
    with local_vertex.http() as http:
        document = http.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document).include(path_regex="^/v1/")  # /v1beta1: the same router
    headers = {"Authorization": f"Bearer {local_vertex.token}"}
    statuses: Counter = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            response = case.call(base_url=local_vertex.base_url, headers=headers, timeout=REQUEST_TIMEOUT_S)
            statuses[response.status_code] += 1
            where = f"{case.method} {case.formatted_path} {case.query or ''}"
            if response.status_code >= 500:
                failures.append(f"{where}: {response.status_code} {response.text[:300]}")
            elif response.status_code >= 400:
                problems = error_problems(response.json(), response.status_code)
                if problems:
                    failures.append(f"{where}: {problems}")

        fuzz()

    total = sum(statuses.values())
    print(f"\nschemathesis: {total} requests over {len(operations)} operations of /v1, "
          f"{EXAMPLES_PER_OPERATION} examples each at most: {dict(sorted(statuses.items()))}; "
          f"5xx: {sum(n for status, n in statuses.items() if status >= 500)}")
    assert not failures, "\n".join(failures[:20])
    assert total >= len(operations)
