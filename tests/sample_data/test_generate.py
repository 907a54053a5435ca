"""The committed sample data is exactly the generator's output, and it is fit to tune on."""

from __future__ import annotations

import json
from collections import Counter

from include.sample_data.generate import LABELS, generate
from tests.conftest import PROJECT_ROOT

SAMPLE_DIR = PROJECT_ROOT / "include" / "sample_data"


def _read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_committed_files_are_the_generator_output(tmp_path):
    counts = generate(tmp_path)
    for name in counts:
        assert (tmp_path / name).read_bytes() == (SAMPLE_DIR / name).read_bytes(), name


def test_classification_sample_is_big_enough_balanced_and_has_no_leakage():
    splits = {name: _read(SAMPLE_DIR / "classification" / f"{name}.jsonl")
              for name in ("train", "validation", "heldout")}
    assert len(splits["train"]) >= 500
    labels = Counter(ex["contents"][-1]["parts"][0]["text"] for ex in splits["train"])
    assert set(labels) == set(LABELS)
    assert max(labels.values()) - min(labels.values()) <= 1
    prompts = {name: {ex["contents"][0]["parts"][0]["text"] for ex in rows} for name, rows in splits.items()}
    assert not prompts["train"] & prompts["heldout"]
    assert not prompts["train"] & prompts["validation"]
    assert len(prompts["train"]) == len(splits["train"]), "duplicate prompts in the training set"
