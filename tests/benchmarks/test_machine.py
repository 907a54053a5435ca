"""The machine line every CPU benchmark prints beside its figures."""

from __future__ import annotations

import pytest

from include.tuning_engine.runtime import runtime
from tests.benchmarks.machine import cpu_info, describe


def test_cpu_info_reads_a_field_of_the_first_processor_and_nothing_for_an_absent_one():
    assert cpu_info("processor") == "0"
    assert cpu_info("no such field") == ""


def test_the_machine_line_names_the_processor_the_engines_precision_and_a_measured_ceiling():
    if runtime().device != "cpu":
        pytest.skip("a GPU's line names the GPU")
    line = describe()
    assert line.startswith(f"cpu: {cpu_info('model name')}, ")
    assert ("bf16 (the CPU has bf16 dot products)" if runtime().bf16 else "fp32 (no bf16 dot products)") in line
    gflops = float(line.split("a large matrix product ")[1].split(" GFLOP/s")[0])
    assert gflops > 0
