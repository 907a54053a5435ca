"""The AIP-160 list filter of tuningJobs.list."""

from __future__ import annotations

import pytest

from include.local_vertex.errors import ApiError
from include.local_vertex.filters import compile_filter

RUNNING = {"state": "JOB_STATE_RUNNING", "labels": {"team": "nlp", "env": "dev"},
           "tunedModelDisplayName": "a", "createTime": "2026-01-02T00:00:00.000000Z"}
DONE = {"state": "JOB_STATE_SUCCEEDED", "labels": {"team": "vision"}, "baseModel": "gemini-2.5-flash",
        "createTime": "2026-03-01T00:00:00.000000Z"}


@pytest.mark.parametrize("text, running, done", [
    ("", True, True),
    ('state="JOB_STATE_RUNNING"', True, False),
    ("state=JOB_STATE_SUCCEEDED", False, True),
    ('labels.team="nlp"', True, False),
    ('labels.team="nlp" AND state="JOB_STATE_RUNNING"', True, False),
    ('labels.team="nlp" AND state="JOB_STATE_SUCCEEDED"', False, False),
    ('labels.team="nlp" OR labels.team="vision"', True, True),
    ("labels.env:*", True, False),
    ("NOT labels.env:*", False, True),
    ("-labels.env:*", False, True),
    ('state!="JOB_STATE_RUNNING"', False, True),
    ('(state="JOB_STATE_RUNNING" OR state="JOB_STATE_SUCCEEDED") AND labels.team="vision"', False, True),
    ('create_time>"2026-02-01T00:00:00Z"', False, True),
    ('createTime<="2026-01-02T00:00:00Z"', True, False),
    ('base_model="gemini-2.5-flash"', False, True),
    ('display_name="a"', True, False),
])
def test_filters_select_the_right_jobs(text, running, done):
    matches = compile_filter(text)
    assert (matches(RUNNING), matches(DONE)) == (running, done)


@pytest.mark.parametrize("text, words", [
    ('colour="red"', "unknown field"),
    ('state="x" AND (', "ends too early"),
    ("state", "ends too early"),
    ('state="JOB_STATE_RUNNING")', "unexpected"),
    ('create_time>"yesterday"', "RFC 3339"),
    ('state>"A"', "does not support"),
])
def test_bad_filters_are_invalid_argument(text, words):
    with pytest.raises(ApiError) as raised:
        compile_filter(text)
    assert raised.value.status == "INVALID_ARGUMENT" and words in raised.value.message


@pytest.mark.parametrize("text", [
    "(" * 5000 + 'state="x"' + ")" * 5000,
    "NOT " * 3000 + 'state="x"',
    "- " * 2000 + 'state="x"',
    'labels.a="' + "x" * 5000 + '"',
    'state="x" OR ' * 1000 + 'state="y"',
])
def test_deep_or_huge_filters_are_a_400_not_a_recursion_error(text):
    with pytest.raises(ApiError) as raised:
        compile_filter(text)
    assert raised.value.http_code == 400 and ("deep" in raised.value.message or "characters long" in raised.value.message)


def test_nesting_within_the_limit_still_works():
    assert compile_filter("(" * 20 + "NOT " * 5 + 'state="JOB_STATE_RUNNING"' + ")" * 20)(DONE)
    assert compile_filter("---labels.team:*")(DONE) is False
    assert compile_filter("-" * 4000 + "labels.team:*")(DONE) is True  # no recursion per dash
