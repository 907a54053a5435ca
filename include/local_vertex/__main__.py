"""`python -m include.local_vertex serve`: start the local Vertex AI service (see the package docs)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from include.local_vertex.config import ServiceConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m include.local_vertex",
                                     description="A local service that speaks Vertex AI's tuning REST API.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the API, the job scheduler and the storage emulator")
    defaults = ServiceConfig()
    serve.add_argument("--host", default=defaults.host, help="bind address (default loopback)")
    serve.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_VERTEX_PORT", defaults.port)),
                       help="REST API port (default $LOCAL_VERTEX_PORT or 8790)")
    serve.add_argument("--storage-port", type=int,
                       default=int(os.environ.get("LOCAL_VERTEX_STORAGE_PORT", defaults.storage_port)),
                       help="Cloud Storage emulator port (clients: STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT)")
    serve.add_argument("--storage-host", default=defaults.storage_host,
                       help="the emulator's bind address (default loopback, whatever --host is); it has no "
                            "authentication, so a non-loopback one needs --storage-allow")
    serve.add_argument("--storage-allow", action="append", default=[], metavar="CIDR",
                       help="network whose clients may reach an exposed storage emulator (repeatable)")
    serve.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LOCAL_VERTEX_DATA", ".local_vertex")),
                       help="jobs.sqlite, storage/, jobs/<id>/, models/ (default $LOCAL_VERTEX_DATA or .local_vertex)")
    serve.add_argument("--token", default=os.environ.get("LOCAL_VERTEX_TOKEN"),
                       help="bearer token required on every call (default $LOCAL_VERTEX_TOKEN, which other "
                            "users cannot read in `ps` as they can this flag); mandatory for a non-loopback --host")
    serve.add_argument("--max-concurrent-jobs", type=int, default=defaults.max_concurrent_jobs,
                       help="jobs training at once; more wait in JOB_STATE_QUEUED (default 1, like Vertex's quota)")
    serve.add_argument("--base-model", default=None,
                       help="local folder or id that gemini-* names resolve to (default: bundled SmolLM2-135M)")
    serve.add_argument("--data-root", type=Path, action="append", default=[],
                       help="folder that file:// dataset URIs may point into (repeatable)")
    serve.add_argument("--max-request-bytes", type=int, default=defaults.max_request_bytes,
                       help="larger request bodies get 413 (default 8 MiB)")
    serve.add_argument("--cancel-grace", type=float, default=defaults.cancel_grace_s,
                       help="seconds a cancelled worker gets to stop on its own before it is terminated")
    serve.add_argument("--stop-grace", type=float, default=defaults.stop_grace_s,
                       help="seconds the workers get to stop on shutdown before they are killed (their jobs "
                            "resume on the next start either way)")
    serve.add_argument("--worker-hang-timeout", type=float, default=defaults.worker_hang_timeout_s,
                       help="a worker that reports no progress for this many seconds is killed and its job "
                            "FAILED (default 900)")
    serve.add_argument("--checkpoint-interval", type=float, default=defaults.checkpoint_interval_s,
                       help="seconds between the checkpoints a job saves within an epoch (default 300)")
    serve.add_argument("--torch-threads", type=int, default=None,
                       help="torch threads per worker and for generation, fixed (default: chosen by timing: "
                            "a worker's training steps use the cores but one, shared by the jobs that train at "
                            "once, or all of its share while that is faster; the generator one share in "
                            "max-jobs + 1, or all the cores while that is faster)")
    serve.add_argument("--generation-timeout", type=float, default=defaults.generation_timeout_s,
                       help="seconds a generateContent request may take before DEADLINE_EXCEEDED (default 300)")
    serve.add_argument("--generation-max-queue", type=int, default=defaults.generation_max_queue,
                       help="generateContent requests waiting or running at once; more get RESOURCE_EXHAUSTED")
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        config = ServiceConfig(
            host=args.host, port=args.port, storage_port=args.storage_port, storage_host=args.storage_host,
            storage_allowed_networks=tuple(args.storage_allow), data_dir=args.data_dir,
            token=args.token or None, max_concurrent_jobs=args.max_concurrent_jobs, base_model=args.base_model,
            data_roots=tuple(args.data_root), max_request_bytes=args.max_request_bytes,
            cancel_grace_s=args.cancel_grace, stop_grace_s=args.stop_grace,
            worker_hang_timeout_s=args.worker_hang_timeout, checkpoint_interval_s=args.checkpoint_interval,
            torch_threads=args.torch_threads,
            generation_timeout_s=args.generation_timeout, generation_max_queue=args.generation_max_queue,
        )
        config.check_safe_to_serve()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from include.local_vertex.server import serve

    try:
        serve(config, access_log=args.access_log)
    except RuntimeError as exc:  # a data dir or port in use: say so, without a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
