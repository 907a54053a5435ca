"""Fixtures of the engine's tests: one tiny model per session and a toy task it can learn."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tuning_engine.helpers import TOY_PAIRS, contents_example, write_jsonl


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from include.tuning_engine.tiny import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> str:
    """The bundled SmolLM2, converted once per session (about 30 s): where bf16's rounding shows."""
    from include.tuning_engine.models import ensure_smollm2

    return str(ensure_smollm2(tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model):
    from include.tuning_engine.runtime import load_tokenizer

    return load_tokenizer(tiny_model)


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> tuple[Path, Path]:
    """A task a tiny model learns in a few seconds: three fixed questions, three fixed answers."""
    folder = tmp_path_factory.mktemp("toy-data")
    train = write_jsonl(folder / "train.jsonl", [contents_example(*TOY_PAIRS[i % 3]) for i in range(48)])
    validation = write_jsonl(folder / "validation.jsonl", [contents_example(q, a) for q, a in TOY_PAIRS])
    return train, validation
