"""
### A producer of training data (tests)

Lands a training file on Cloud Storage and announces it on the `gemini_tuning_training_data`
Asset, as an upstream pipeline would: the run's conf names the local file, where it goes, and
what else the event's extra carries.
"""

from __future__ import annotations

import pendulum

from airflow.sdk import Asset, dag, task

TRAINING_DATA = Asset(name="gemini_tuning_training_data")


@dag(dag_id="retraining_producer", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
     catchup=False, doc_md=__doc__, tags=["tests"], default_args={"owner": "tests", "retries": 1})
def retraining_producer():
    @task(outlets=[TRAINING_DATA])
    def land_training_file(dag_run=None, outlet_events=None) -> str:
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        conf = dag_run.conf
        bucket, name = conf["destination"].removeprefix("gs://").split("/", 1)
        GCSHook().upload(bucket_name=bucket, object_name=name, filename=conf["source"], mime_type="application/jsonl")
        outlet_events[TRAINING_DATA].extra = {"training_dataset": conf["destination"], **conf.get("extra", {})}
        return conf["destination"]

    land_training_file()


retraining_producer()
