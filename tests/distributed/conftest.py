"""The distributed shape's fixture, shared by this folder's tests (one shape per module)."""

from tests.fixtures.airflow_distributed import airflow_distributed  # noqa: F401
