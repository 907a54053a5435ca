"""The service's settings: threads per process, what may be exposed and how."""

from __future__ import annotations

import os
import subprocess
import sys

from include.local_vertex import config as config_module
from include.local_vertex.config import ServiceConfig
from tests.conftest import PROJECT_ROOT


def test_workers_and_the_generator_share_the_cores(monkeypatch, tmp_path):
    monkeypatch.setattr(config_module, "_cores", lambda: 16)
    three_jobs = ServiceConfig(data_dir=tmp_path, max_concurrent_jobs=3)
    assert (three_jobs.worker_threads(), three_jobs.generator_threads()) == (5, 4)  # 3 x 5 + 4 = 19 on 16
    one_job = ServiceConfig(data_dir=tmp_path)
    assert (one_job.worker_threads(), one_job.generator_threads()) == (15, 8)
    monkeypatch.setattr(config_module, "_cores", lambda: 2)
    assert (one_job.worker_threads(), one_job.generator_threads()) == (1, 1)
    assert one_job.worker_max_threads() == 2  # a lone job may take the second core while it pays
    monkeypatch.setattr(config_module, "_cores", lambda: 16)
    assert (three_jobs.worker_max_threads(), one_job.worker_max_threads()) == (5, 16)
    pinned = ServiceConfig(data_dir=tmp_path, max_concurrent_jobs=3, torch_threads=2)
    assert (pinned.worker_threads(), pinned.generator_threads(), pinned.worker_max_threads()) == (2, 2, 2)
    assert (one_job.generator_max_threads(), pinned.generator_max_threads()) == (16, 2)


def test_the_engine_takes_its_thread_count_from_the_service(tmp_path):
    probe = "import torch; torch.set_num_threads(2); from include.tuning_engine.runtime import runtime; runtime(); " \
            "print(torch.get_num_threads(), runtime().thread_chooser().counts)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True,
                         env={**os.environ, "TUNING_ENGINE_THREADS": "1", "TUNING_ENGINE_MAX_THREADS": "2"})
    assert out.stdout.strip() == "1 [1, 2]"


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
