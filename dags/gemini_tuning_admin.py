"""
### Tuning jobs: list, get, cancel

The other calls of Google's supervised tuning guide, from the Airflow UI. Trigger this DAG with
the form below:

- **list**: the tuning jobs of the project and region, newest first. Narrow them with a filter in
  Vertex's syntax, e.g. `state="JOB_STATE_RUNNING"` or `labels.airflow_dag_id="gemini_supervised_tuning"`.
- **get**: one job, by its full name (`projects/.../locations/.../tuningJobs/ID`) or its ID.
- **cancel**: stop a queued or running job (a job that has already ended is left as it is).

The result of each call is in the task's XCom (`return_value`) and in its log. The backend is the
`gemini_tuning_default` connection, as for the tuning pipeline.
"""

from __future__ import annotations

import pendulum

from airflow.sdk import Param, dag, task
from gemini_tuning.operators.tuning_job import (
    CancelTuningJobOperator,
    GetTuningJobOperator,
    ListTuningJobsOperator,
)

ACTIONS = {"list": "list_tuning_jobs", "get": "get_tuning_job", "cancel": "cancel_tuning_job"}


@dag(
    dag_id="gemini_tuning_admin",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["gemini", "vertex-ai", "tuning", "admin"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": pendulum.duration(seconds=15)},
    params={
        "action": Param("list", type="string", enum=list(ACTIONS), title="Action",
                        description="list the jobs, get one job, or cancel one job."),
        "job_name": Param("", type="string", title="Tuning job",
                          description="For get and cancel: the job's full name or its ID."),
        "filter": Param("", type="string", title="Filter (list)",
                        description='For list: e.g. state="JOB_STATE_RUNNING" AND labels.team="search".'),
        "region": Param("", type="string", title="Region",
                        description="Leave empty for the connection's region."),
    },
)
def gemini_tuning_admin():
    @task.branch
    def choose_action(params=None) -> str:
        action = params["action"]
        if action in ("get", "cancel") and not params["job_name"].strip():
            raise ValueError(f"the {action} action needs a job_name: the job's full name or its ID")
        return ACTIONS[action]

    location = "{{ params.region }}"  # empty: the connection's region
    choose_action() >> [
        ListTuningJobsOperator(task_id="list_tuning_jobs", filter="{{ params.filter }}", location=location),
        GetTuningJobOperator(task_id="get_tuning_job", job_name="{{ params.job_name }}", location=location),
        CancelTuningJobOperator(task_id="cancel_tuning_job", job_name="{{ params.job_name }}", location=location),
    ]


gemini_tuning_admin()
