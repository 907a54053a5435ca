"""--torch-threads reaches the engine, which sets torch's thread count on its first use."""

from __future__ import annotations

import os
import subprocess
import sys

from include.local_vertex.config import ServiceConfig
from tests.conftest import PROJECT_ROOT


def test_torch_threads_are_handed_to_the_engine(monkeypatch, tmp_path):
    monkeypatch.delenv("TUNING_ENGINE_THREADS", raising=False)  # also restores it after the test
    ServiceConfig(data_dir=tmp_path).apply_torch_threads()
    assert "TUNING_ENGINE_THREADS" not in os.environ
    ServiceConfig(data_dir=tmp_path, torch_threads=1).apply_torch_threads()
    probe = "import torch; torch.set_num_threads(2); from include.tuning_engine.runtime import runtime; " \
            "runtime(); print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    assert out.stdout.strip() == "1"
