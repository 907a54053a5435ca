"""Local Vertex AI: a service that speaks Vertex AI's tuning REST API and Cloud Storage offline.

Start it with one command (from the project root, after `source scripts/env.sh`):

    python -m include.local_vertex serve [--host 127.0.0.1] [--port 8790] [--storage-port 8791]
        [--storage-host 127.0.0.1 [--storage-allow CIDR ...]] [--data-dir .local_vertex]
        [--token TOKEN] [--max-concurrent-jobs 1] [--base-model PATH_OR_ID] [--data-root DIR ...]

It starts the REST API, the job scheduler (one worker process per training job), the generation
process and a gcp-storage-emulator (clients: STORAGE_EMULATOR_HOST=http://127.0.0.1:8791), and
stops them all on Ctrl-C / SIGTERM. Data dir: jobs.sqlite, storage/, jobs/<id>/ (data/ with the
job's copy of its datasets, checkpoints/, adapter/, worker.log, heartbeat), models/.

Exposure: a non-loopback --host needs --token. The storage emulator has no authentication: it
listens on loopback whatever --host is, and a non-loopback --storage-host needs --storage-allow
(the networks whose clients it answers, besides loopback). scripts/env.sh makes a random token
per data dir (<data-dir>/token, mode 0600).

Served under both {v} = /v1 and /v1beta1 ({parent} = projects/{p}/locations/{l}, free-form):

    POST {v}/{parent}/tuningJobs                          create (camelCase or snake_case body)
    GET  {v}/{parent}/tuningJobs?pageSize&pageToken&filter  list, newest first; filter in AIP-160:
                                                          state="JOB_STATE_RUNNING" AND labels.k="v"
    GET  {v}/{parent}/tuningJobs/{id}                     get
    POST {v}/{parent}/tuningJobs/{id}:cancel              cancel ({}; 400 FAILED_PRECONDITION if ended)
    POST {v}/{parent}/endpoints/{id}:{call}               the tuned model (tunedModel.endpoint)
    POST {v}/{parent}/publishers/google/models/{model}:{call}            the base model
         {call}: generateContent, streamGenerateContent (?alt=sse: server-sent events; else a
         JSON array), countTokens, computeTokens
    GET  {v}/{parent}/models/{id}[@1]                     the tuned model (tunedModel.model), with its
                                                          checkpoints and defaultCheckpointId
    PATCH {v}/{parent}/models/{id}[@1]?updateMask=defaultCheckpointId
                                                          which checkpoint the main endpoint serves

Checkpoints (checkpoints.py): unless supervisedTuningSpec.exportLastCheckpointOnly, one per epoch
below 10 epochs, about 10 evenly spaced (the last included) from 10 up; each is the LoRA adapter
saved after its epoch (megabytes), listed in tunedModel.checkpoints[] {checkpointId, epoch, step,
endpoint} as soon as it is saved and served on its own endpoint from then on. The eval metrics of
a checkpoint are at its step. The main endpoint (once the job succeeded) serves the default
checkpoint: the last, until PATCH changes it.

Request bodies are read as Google's JSON parser reads them (wire.py): camelCase or snake_case,
one object for a repeated field, enum values and roles in any case. `GET /openapi.json` (with
the token) documents the routes, bodies as Google's schemas.

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
readable while the job runs. `GET /healthz` (or /health) needs no token.

Clients that work unchanged: google-genai in Vertex mode (base_url + static bearer credentials,
api_version v1 or the default v1beta1), google-cloud-aiplatform's REST transport
(GenAiTuningServiceClient, TensorboardServiceClient with ClientOptions(api_endpoint=base_url)),
curl; for storage, google-cloud-storage, GCSHook and gcsfs through STORAGE_EMULATOR_HOST.

Errors: {"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT"}}.

generateContent: the generation process decodes every request it has with one forward pass per
token for all of them, and a request that arrives joins them at the next token (continuous
batching; at most 32 rows at once). maxOutputTokens defaults to 512 (or what is left of the
model's context, if less) and may not exceed what the prompt leaves of the context;
candidateCount is 1 to 8. At most --generation-max-queue requests wait or run at once (more get
429 RESOURCE_EXHAUSTED), each for at most --generation-timeout seconds (then 504
DEADLINE_EXCEEDED). If the generation process dies, its requests get 503 UNAVAILABLE and the
next request starts a new one; trainings are not affected. Threads (unless --torch-threads), each
chosen by timing the steps at both counts as the load comes and goes: a worker's training steps
use the cores but one divided by --max-concurrent-jobs, or its share of all the cores while that
is faster; the generator's decoding steps one share of the cores in max-concurrent-jobs + 1, or
all of them while that is faster.

Job life: JOB_STATE_QUEUED (waiting for a slot; --max-concurrent-jobs) -> PENDING (its worker
process starts, fetches gs:// data, fills unset hyperparameters with the recommended values and
reports them on the job) -> RUNNING (startTime) -> SUCCEEDED (tunedModel {model, endpoint}) |
FAILED (error {code, message}) | CANCELLED (error code 1); endTime when it ends. Cancel: a
queued job ends at once, a running one goes through CANCELLING and stops within a training
step (terminated after --cancel-grace seconds otherwise); a job that fails after a cancel ends
CANCELLED. A worker that dies fails its job with the reason, and so does one that reports no
progress for --worker-hang-timeout seconds (it is killed). The job trains on the data as checked
at create (gs:// object MD5 and generation, file:// SHA-256): data changed since fails the job.
A stop of the service (Ctrl-C, SIGTERM), in any phase of a job, leaves the job to resume from
its last checkpoint (one per epoch, and one every --checkpoint-interval seconds within an
epoch) on the next start; a job whose service crashed (was killed) resumes too, and is FAILED
"interrupted" after two crashes. A non-finite loss fails the job with the step it happened at.
Training examples longer than the limit (2048 tokens) lose their oldest context, never their
last answer, and are reported in truncatedExampleIndices.

Modules: api (the app), routes/ (a router per resource), wire (Google's JSON), job_requests
(create body), filters (list filter), store (SQLite),
scheduler (queue, cancels, recovery), worker (one job's process), datasets/storage/paths
(URIs and pins, emulator, confinement), generation (the generation process), tensorboard (metrics),
server and __main__ (the command).
"""
