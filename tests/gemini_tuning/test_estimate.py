"""The cost and time estimate made before any job is created."""

from __future__ import annotations

import json

import pytest

from gemini_tuning.estimate import estimate, load_price_table, over_budget, price_per_million


def test_the_shipped_table_is_dated_and_sourced():
    table = load_price_table()
    assert table["as_of"] and table["source"].startswith("https://cloud.google.com/")
    assert price_per_million(table, "gemini-2.5-flash-lite-001") == 1.5  # the longest matching name
    assert price_per_million(table, "gemini-2.5-flash") == 5.0
    assert price_per_million(table, "publishers/google/models/gemini-2.5-pro") == 25.0
    assert price_per_million(table, "gemini-9-ultra") is None


def test_vertex_cost_is_tokens_times_epochs_over_the_sweep():
    result = estimate(base_model="gemini-2.5-flash", backend="vertex", training_tokens=400_000,
                      epoch_counts=[2, 3], tokens_counted=False, price_table=load_price_table())
    assert result.billable_tokens == 2_000_000 and result.cost_usd == 10.0 and result.seconds is None
    assert "2,000,000 billable tokens" in result.describe() and "$10.00" in result.describe()


def test_local_time_comes_from_the_measured_throughput():
    table = load_price_table()
    result = estimate(base_model="gemini-2.5-flash", backend="local", training_tokens=30_000, epoch_counts=[2],
                      tokens_counted=True, price_table=table)
    assert result.cost_usd == 0.0
    assert result.seconds == pytest.approx(60_000 / table["local_backend"]["training_tokens_per_second"], abs=0.1)


def test_max_cost_stops_with_the_figures_in_the_message():
    result = estimate(base_model="gemini-2.5-pro", backend="vertex", training_tokens=1_000_000,
                      epoch_counts=[4], tokens_counted=False, price_table=load_price_table())
    assert over_budget(result, None) is None and over_budget(result, 200.0) is None
    message = over_budget(result, 50.0)
    assert "over budget" in message and "$100.00" in message and "$50.00" in message
    unknown = estimate(base_model="gemini-9", backend="vertex", training_tokens=1, epoch_counts=[1],
                       tokens_counted=False, price_table=load_price_table())
    assert "no price known for gemini-9" in over_budget(unknown, 1.0)


def test_a_deployment_can_replace_the_table():
    table = load_price_table(json.dumps({"as_of": "2027-01-01", "source": "our contract",
                                         "usd_per_million_training_tokens": {"gemini-2.5-flash": 2.0}}))
    assert price_per_million(table, "gemini-2.5-flash") == 2.0
    with pytest.raises(ValueError, match="lacks 'source'"):
        load_price_table('{"as_of": "x", "usd_per_million_training_tokens": {}}')
