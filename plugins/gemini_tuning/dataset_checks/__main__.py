"""Check a tuning dataset without Airflow.

    python -m gemini_tuning.dataset_checks TRAIN.jsonl [--validation VAL.jsonl] [--task TASK]
        [--backend vertex|local] [--tokenizer DIR] [--report-dir DIR]

Prints the report; exits 0 when the dataset is valid, 1 when it is not, 2 on a usage error
(bad arguments, a missing file).
"""

from __future__ import annotations

import argparse
import sys

from gemini_tuning.dataset_checks.rules import Backend
from gemini_tuning.dataset_checks.source import DatasetInputError
from gemini_tuning.dataset_checks.validate import TASKS, validate_dataset

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gemini_tuning.dataset_checks",
        description="Validate a supervised tuning dataset (JSONL) as Vertex AI will, and more.",
    )
    parser.add_argument("training", help="training JSONL: a path, file:// or gs:// URI")
    parser.add_argument("--validation", help="validation JSONL: a path, file:// or gs:// URI")
    parser.add_argument("--task", choices=TASKS, help="task type: enables its checks (classes, minimum size)")
    parser.add_argument("--backend", choices=[b.value for b in Backend], default=Backend.VERTEX.value,
                        help="where the data will be tuned (the local backend takes text only)")  # fmt: skip
    parser.add_argument("--tokenizer", help="tokenizer folder to count tokens with (default: estimate)")
    parser.add_argument("--report-dir", help="write report.html there")
    parser.add_argument("--gcp-conn-id", default="google_cloud_default", help="Airflow connection for gs:// inputs")
    args = parser.parse_args(argv)
    try:
        report = validate_dataset(
            args.training,
            args.validation,
            task=args.task,
            backend=args.backend,
            tokenizer=args.tokenizer,
            report_dir=args.report_dir,
            gcp_conn_id=args.gcp_conn_id,
        )
    except (DatasetInputError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(report.to_text())
    return EXIT_VALID if report.valid else EXIT_INVALID


# Airflow's plugin manager executes every .py file under plugins/ under its bare name, so this
# file also runs as "__main__" there: only `python -m gemini_tuning.dataset_checks` sets the package.
if __name__ == "__main__" and __package__ == "gemini_tuning.dataset_checks":
    sys.exit(main())
