import pytest

from include.tuning_engine.recommended import ADAPTER_SIZES, adapter_rank, recommended_hyperparameters


def test_recommendation_is_vertex_shaped():
    for count in (10, 520, 5000):
        recommended = recommended_hyperparameters(count)
        assert set(recommended) == {"epochCount", "adapterSize", "learningRateMultiplier"}
        assert recommended["adapterSize"] in ADAPTER_SIZES
        assert 1 <= recommended["epochCount"] <= 4
    assert recommended_hyperparameters(10)["epochCount"] >= recommended_hyperparameters(5000)["epochCount"]


def test_adapter_ranks():
    assert [adapter_rank(name) for name in ADAPTER_SIZES] == [1, 2, 4, 8, 16, 32]
    with pytest.raises(ValueError, match="ADAPTER_SIZE_ONE"):
        adapter_rank("ADAPTER_SIZE_THREE")
    with pytest.raises(ValueError):
        recommended_hyperparameters(0)
