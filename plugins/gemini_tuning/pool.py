"""
The Airflow pool that bounds how many tuning jobs run at once, across runs and within a sweep.

Vertex enforces a quota on concurrent tuning jobs, global to the project (shared by every region
and model): "Every project comes with a default quota to run at least one tuning job", raised on
request as "Global concurrent tuning jobs" (Google's "About supervised fine-tuning for Gemini
models", section Quota; read here from a stored copy of that page, not from a live project: a
project's own figure is on its Quotas page). So the pool starts with one slot; give it as many as
the project's quota.

``create_tuning_job`` holds its slot for the job's whole life: it creates the job, then stays
deferred until the job ends. The pool counts deferred tasks (``include_deferred``), so one slot
stands for one live job; without that the slot would be free again seconds after the create.

    python -m gemini_tuning.pool     create the pool if it is missing (as airflow-distributed.sh does)
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

TUNING_JOBS_POOL = "gemini_tuning_jobs"
DEFAULT_SLOTS = 1  # Vertex's default quota of concurrent tuning jobs (see above)
DESCRIPTION = (
    "Live tuning jobs: create_tuning_job holds a slot until its job ends. "
    "Slots = the project's 'Global concurrent tuning jobs' quota (Vertex's default is 1)."
)


def ensure_tuning_jobs_pool() -> str:
    """
    Create the pool with the default slots if it is missing; an existing pool keeps its slots.

    A missing pool would leave every create task scheduled and never run, so each Airflow
    component that schedules or watches tasks calls this when it starts (see the listener), and
    so do the set-up scripts. Returns what it found or did, for the log.
    """
    from sqlalchemy.exc import IntegrityError

    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    for _ in range(2):  # the scheduler, triggerer and dag-processor may start at the same moment
        try:
            with create_session() as session:
                pool = Pool.get_pool(TUNING_JOBS_POOL, session=session)
                if pool is None:
                    Pool.create_or_update_pool(
                        TUNING_JOBS_POOL, DEFAULT_SLOTS, DESCRIPTION, include_deferred=True, session=session
                    )
                    return f"created pool {TUNING_JOBS_POOL} with {DEFAULT_SLOTS} slot(s), counting deferred tasks"
                if not pool.include_deferred:
                    log.warning(
                        "Pool %s does not count deferred tasks, so it does not bound running tuning jobs: "
                        "set it with `airflow pools set %s %d '...' --include-deferred`",
                        TUNING_JOBS_POOL, TUNING_JOBS_POOL, pool.slots,
                    )
                deferred = "counting" if pool.include_deferred else "NOT counting"
                return f"pool {TUNING_JOBS_POOL} exists: {pool.slots} slot(s), {deferred} deferred tasks"
        except IntegrityError:
            continue  # another component created it first: read it again
    raise RuntimeError(f"could not create or read pool {TUNING_JOBS_POOL}")


if __name__ == "__main__":
    print(ensure_tuning_jobs_pool())
