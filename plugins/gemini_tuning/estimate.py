"""What a tuning run will cost and how long it will take, before any job is created.

Vertex bills supervised tuning per training token: the tokens of the training set times the
epochs, for every job of a sweep. The price per million training tokens comes from one table,
``pricing.json`` beside this module (dated, with its source), or from a table of the same shape
that a deployment supplies (the pipeline reads the ``gemini_tuning_price_table`` Variable). The
time is estimated for the local backend only, from its measured training throughput; Google
publishes no throughput for Vertex.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PRICE_TABLE = Path(__file__).with_name("pricing.json")


def load_price_table(text: str | None = None) -> dict[str, Any]:
    """The shipped price table, or the JSON ``text`` of a replacement with the same keys."""
    table = json.loads(text) if text and text.strip() else json.loads(PRICE_TABLE.read_text(encoding="utf-8"))
    for key in ("as_of", "source", "usd_per_million_training_tokens"):
        if key not in table:
            raise ValueError(f"the price table lacks {key!r}: see {PRICE_TABLE} for the shape")
    return table


def price_per_million(table: dict[str, Any], base_model: str) -> float | None:
    """The price of the longest model name in the table that ``base_model`` starts with (versions share it)."""
    model = base_model.rsplit("/", 1)[-1]
    matches = [name for name in table["usd_per_million_training_tokens"] if model.startswith(name)]
    return float(table["usd_per_million_training_tokens"][max(matches, key=len)]) if matches else None


@dataclass(frozen=True)
class Estimate:
    base_model: str
    backend: str
    training_tokens: int  # of the training file, one epoch
    epoch_counts: list[int]  # one per job
    billable_tokens: int  # training tokens times epochs, over every job
    usd_per_million_tokens: float | None
    cost_usd: float | None  # None: no price known for the model
    seconds: float | None  # None: no throughput known (Vertex)
    tokens_counted: bool  # counted with a tokenizer, else estimated from characters
    price_table_as_of: str
    price_table_source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        jobs = f"{len(self.epoch_counts)} job(s) of {self.epoch_counts} epochs"
        counted = "counted" if self.tokens_counted else "estimated from characters"
        cost = (
            f"${self.cost_usd:,.2f} at ${self.usd_per_million_tokens:g} per 1M training tokens"
            if self.cost_usd is not None
            else f"no price known for {self.base_model}"
        )
        time = f", about {self.seconds / 60:,.0f} min of training" if self.seconds is not None else ""
        return (
            f"Estimate: {self.billable_tokens:,} billable tokens ({self.training_tokens:,} training tokens, "
            f"{counted}, x {jobs}) = {cost}{time} (prices as of {self.price_table_as_of}, "
            f"from {self.price_table_source})"
        )


def estimate(
    *,
    base_model: str,
    backend: str,
    training_tokens: int,
    epoch_counts: list[int],
    tokens_counted: bool,
    price_table: dict[str, Any],
) -> Estimate:
    """Cost (and, locally, time) of tuning ``training_tokens`` for each of ``epoch_counts``."""
    billable = training_tokens * sum(epoch_counts)
    local = price_table.get("local_backend") if backend == "local" else None
    price = float(local["usd_per_million_training_tokens"]) if local else price_per_million(price_table, base_model)
    seconds = billable / float(local["training_tokens_per_second"]) if local else None
    return Estimate(
        base_model=base_model,
        backend=backend,
        training_tokens=training_tokens,
        epoch_counts=list(epoch_counts),
        billable_tokens=billable,
        usd_per_million_tokens=price,
        cost_usd=round(billable / 1e6 * price, 2) if price is not None else None,
        seconds=round(seconds, 1) if seconds is not None else None,
        tokens_counted=tokens_counted,
        price_table_as_of=str(price_table["as_of"]),
        price_table_source=str(price_table["source"]),
    )


def over_budget(result: Estimate, max_cost_usd: float | None) -> str | None:
    """Why the run must stop before creating a job, or None when it may go on."""
    if max_cost_usd is None:
        return None
    if result.cost_usd is None:
        return f"max_cost_usd is {max_cost_usd:g} but {result.describe()}: add the model to the price table"
    if result.cost_usd > max_cost_usd:
        return f"over budget: {result.describe()}, above max_cost_usd ${max_cost_usd:,.2f}"
    return None
