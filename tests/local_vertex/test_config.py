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


def test_the_storage_emulator_stays_on_loopback_unless_exposed_with_allowed_networks(tmp_path):
    import pytest

    exposed_api = ServiceConfig(data_dir=tmp_path, host="0.0.0.0", token="t")
    exposed_api.check_safe_to_serve()
    assert exposed_api.storage_host == "127.0.0.1" and exposed_api.storage_url.startswith("http://127.0.0.1:")
    with pytest.raises(ValueError, match="no authentication.*--storage-allow"):
        ServiceConfig(data_dir=tmp_path, storage_host="0.0.0.0").check_safe_to_serve()
    with pytest.raises(ValueError, match="not a network"):
        ServiceConfig(data_dir=tmp_path, storage_host="0.0.0.0",
                      storage_allowed_networks=("everyone",)).check_safe_to_serve()
    ServiceConfig(data_dir=tmp_path, storage_host="0.0.0.0",
                  storage_allowed_networks=("10.0.0.0/8",)).check_safe_to_serve()


def test_an_exposed_storage_emulator_answers_loopback_and_the_allowed_networks_only(tmp_path):
    from include.local_vertex.storage import _emulator_http_server

    server = _emulator_http_server("127.0.0.1", 0, tmp_path, ("10.0.0.0/8",))
    try:
        assert server.verify_request(None, ("127.0.0.1", 5000))
        assert server.verify_request(None, ("10.1.2.3", 5000))
        assert not server.verify_request(None, ("192.168.1.9", 5000))
        assert not server.verify_request(None, ("8.8.8.8", 5000))
    finally:
        server.server_close()


def test_the_service_refuses_to_expose_the_emulator_without_allowed_networks(tmp_path):
    out = subprocess.run([sys.executable, "-m", "include.local_vertex", "serve", "--data-dir", str(tmp_path),
                          "--storage-host", "0.0.0.0"], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60)
    assert out.returncode == 2 and "refusing to expose the storage emulator" in out.stderr
