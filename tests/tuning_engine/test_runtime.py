"""The precision choice: bf16 autocast only where the hardware has bf16 instructions, unless overridden."""

import pytest
import torch

from include.tuning_engine.runtime import Runtime, _bf16_matmuls


@pytest.mark.parametrize("choice, expected", [("fp32", False), ("bf16", True), ("BF16", True)])
def test_the_environment_overrides_the_choice(monkeypatch, choice, expected):
    monkeypatch.setenv("TUNING_ENGINE_PRECISION", choice)
    assert _bf16_matmuls("cpu") is expected


def test_an_unknown_precision_is_refused(monkeypatch):
    monkeypatch.setenv("TUNING_ENGINE_PRECISION", "fp16")
    with pytest.raises(ValueError, match="fp32 or bf16"):
        _bf16_matmuls("cpu")


def test_a_cpu_uses_bf16_exactly_when_it_has_bf16_instructions(monkeypatch):
    monkeypatch.delenv("TUNING_ENGINE_PRECISION", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert _bf16_matmuls("cpu") is False
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert _bf16_matmuls("cpu") is True
    assert _bf16_matmuls("cuda") is True


def test_autocast_runs_matrix_products_in_bf16_only_when_chosen():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with Runtime("cpu", 1, bf16=True).autocast():
        assert (a @ b).dtype == torch.bfloat16
    with Runtime("cpu", 1, bf16=False).autocast():
        assert (a @ b).dtype == torch.float32
