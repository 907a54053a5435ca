"""Local Vertex AI: a service that speaks Vertex AI's tuning REST API and Cloud Storage offline.

Start it with one command (from the project root, after `source scripts/env.sh`):

    python -m include.local_vertex serve [--host 127.0.0.1] [--port 8790] [--storage-port 8791]
        [--data-dir .local_vertex] [--token TOKEN] [--max-concurrent-jobs 1]
        [--base-model PATH_OR_ID] [--data-root DIR ...]

It starts the REST API, the job scheduler (one worker process per training job) and a
gcp-storage-emulator (clients: STORAGE_EMULATOR_HOST=http://127.0.0.1:8791), and stops them all
on Ctrl-C / SIGTERM. Data dir: jobs.sqlite, storage/, jobs/<id>/ (engine output, worker.log),
models/.

Served under both {v} = /v1 and /v1beta1 ({parent} = projects/{p}/locations/{l}, free-form):

    POST {v}/{parent}/tuningJobs                          create (camelCase or snake_case body)
    GET  {v}/{parent}/tuningJobs?pageSize&pageToken&filter  list, newest first; filter in AIP-160:
                                                          state="JOB_STATE_RUNNING" AND labels.k="v"
    GET  {v}/{parent}/tuningJobs/{id}                     get
    POST {v}/{parent}/tuningJobs/{id}:cancel              cancel ({}; 400 FAILED_PRECONDITION if ended)
    POST {v}/{parent}/endpoints/{id}:generateContent      the tuned model (tunedModel.endpoint)
    POST {v}/{parent}/publishers/google/models/{model}:generateContent   the base model

A job's metrics (the job's `experiment` field is {parent}/tensorboards/{id}/experiments/{id}),
in the shape of Vertex TensorBoard reads; one run, "train", holds the six series
train_total_loss, train_fraction_of_correct_next_step_preds, train_num_predictions,
eval_total_loss, eval_fraction_of_correct_next_step_preds, eval_num_predictions
(displayName = the metric name with its leading slash, e.g. "/train_total_loss"):

    GET {v}/{experiment}                                  TensorboardExperiment
    GET {v}/{experiment}/runs                             {"tensorboardRuns": [...]}
    GET {v}/{experiment}/runs/train/timeSeries            {"tensorboardTimeSeries": [...]}
    GET {v}/{experiment}/runs/train/timeSeries/{series}:read
                                                          {"timeSeriesData": {...}}
    GET {v}/{parent}/tensorboards/{id}:batchRead?timeSeries={experiment}/runs/train/timeSeries/{series}&...
                                                          {"timeSeriesData": [...]} (Vertex's batchRead)
    GET {v}/{experiment}/runs/train/timeSeries:batchRead[?timeSeries=...]
                                                          the same, all six series when none is named

TimeSeriesData = {"tensorboardTimeSeriesId", "valueType": "SCALAR",
                  "values": [{"step": "12", "wallTime": RFC3339, "scalar": {"value": 0.41}}]};
readable while the job runs. `GET /healthz` needs no token.

Errors: {"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT"}}.
"""
