"""What every router needs: the service's parts, and the job behind a resource id."""

from __future__ import annotations

import re
from dataclasses import dataclass

from include.local_vertex.config import ServiceConfig
from include.local_vertex.errors import not_found
from include.local_vertex.generation import GenerationService
from include.local_vertex.scheduler import Scheduler
from include.local_vertex.store import JobRecord, JobStore

PARENT = "/projects/{project}/locations/{location}"
_JOB_ID = re.compile(r"^[0-9]{1,30}$")


@dataclass(frozen=True)
class Service:
    config: ServiceConfig
    store: JobStore
    scheduler: Scheduler
    generation: GenerationService

    def find_job(self, project: str, location: str, job_id: str, collection: str = "tuningJobs") -> JobRecord:
        """The job with this id under this parent (a job's endpoint, model and tensorboard share its id)."""
        record = self.store.get(job_id) if _JOB_ID.match(job_id) else None
        if record is None or (record.project, record.location) != (project, location):
            raise not_found(f"projects/{project}/locations/{location}/{collection}/{job_id} not found")
        return record
