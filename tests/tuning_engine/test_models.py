import json
import time

import pytest

from include.tuning_engine.models import SMOLLM2_FOLDER, resolve_base_model


def test_local_folders_and_hub_ids_pass_through(tiny_model, tmp_path):
    assert resolve_base_model(tiny_model, tmp_path) == tiny_model
    assert resolve_base_model("HuggingFaceTB/SmolLM2-360M-Instruct", tmp_path) == "HuggingFaceTB/SmolLM2-360M-Instruct"
    assert not (tmp_path / SMOLLM2_FOLDER).exists()
    with pytest.raises(ValueError, match="empty"):
        resolve_base_model(" ", tmp_path)


@pytest.mark.slow
def test_gemini_names_convert_the_bundled_smollm2_once(tmp_path):
    from include.tuning_engine.runtime import load_tokenizer

    folder = resolve_base_model("projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash-001", tmp_path)
    assert folder == str(tmp_path / SMOLLM2_FOLDER)
    config = json.loads((tmp_path / SMOLLM2_FOLDER / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    tokenizer = load_tokenizer(folder)
    assert len(tokenizer) == 49152 and tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"
    assert [path.name for path in tmp_path.iterdir() if not path.name.startswith(".")] == [SMOLLM2_FOLDER]  # no staging left

    started = time.monotonic()
    assert resolve_base_model("smollm2", tmp_path) == folder
    assert time.monotonic() - started < 1
