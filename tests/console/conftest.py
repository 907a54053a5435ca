"""A standalone Airflow with real logins (no all-admins mode) and the console, on the local service."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx
import pytest

from tests.fixtures.airflow_standalone import StandaloneAirflow
from tests.fixtures.local_vertex import LocalVertexService, chat_rows

USER, PASSWORD = "tester", "console-test-password"
CONSOLE = "/gemini-tuning"


@dataclass
class ConsoleAirflow:
    airflow: StandaloneAirflow
    service: LocalVertexService

    @property
    def url(self) -> str:
        return self.airflow.api_url

    def token(self) -> str:
        response = httpx.post(f"{self.url}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=30)
        response.raise_for_status()
        return response.json()["access_token"]

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def create_job(self, name: str, *, examples: int, epochs: int, labels: dict[str, str] | None = None) -> str:
        """A tuning job on the local service, created the way the pipeline's operator creates one."""
        train = self.service.write_dataset(f"{name}-train.jsonl", chat_rows(examples))
        validation = self.service.write_dataset(f"{name}-validation.jsonl", chat_rows(8))
        body = {
            "baseModel": "gemini-2.5-flash",
            "tunedModelDisplayName": name,
            "labels": labels or {},
            "supervisedTuningSpec": {
                "trainingDatasetUri": train,
                "validationDatasetUri": validation,
                "hyperParameters": {"epochCount": epochs, "adapterSize": "ADAPTER_SIZE_FOUR"},
            },
        }
        with self.service.http() as http:
            response = http.post(f"/v1/{self.service.parent}/tuningJobs", json=body)
        response.raise_for_status()
        return response.json()["name"]

    def wait_for(self, what: str, check, timeout: float = 180):
        deadline = time.monotonic() + timeout
        while (found := check()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} within {timeout:.0f} s: see {self.airflow.home}/standalone.log")
            time.sleep(1)
        return found


@pytest.fixture(scope="session")
def console_airflow(local_vertex, airflow_standalone_factory, tmp_path_factory) -> ConsoleAirflow:
    passwords = tmp_path_factory.mktemp("console-auth") / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    connection = {
        "conn_type": "google_cloud_platform",
        "password": local_vertex.token,
        "extra": {"project": local_vertex.project, "location": local_vertex.location, "base_url": local_vertex.base_url},
    }
    airflow = airflow_standalone_factory({
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW_CONN_GEMINI_TUNING_DEFAULT": json.dumps(connection),
    })
    return ConsoleAirflow(airflow=airflow, service=local_vertex)
