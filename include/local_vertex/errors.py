"""Google's error shape: every failure leaves the service as {"error": {code, message, status}}.

Handlers raise :class:`ApiError`; the app turns it into the JSON body that google-genai and
google-api-core parse into their own exceptions.
"""

from __future__ import annotations

from http import HTTPStatus

# google.rpc.Code numbers, used inside a TuningJob's `error` (a google.rpc.Status).
RPC_CODES = {
    "CANCELLED": 1,
    "INVALID_ARGUMENT": 3,
    "NOT_FOUND": 5,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
}


class ApiError(Exception):
    """An HTTP error with Google's canonical status name."""

    def __init__(self, http_code: int, status: str, message: str):
        super().__init__(message)
        self.http_code = http_code
        self.status = status
        self.message = message

    def body(self) -> dict:
        return {"error": {"code": self.http_code, "message": self.message, "status": self.status}}


def invalid_argument(message: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, "INVALID_ARGUMENT", message)


def failed_precondition(message: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, "FAILED_PRECONDITION", message)


def not_found(message: str) -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, "NOT_FOUND", message)


def unauthenticated(message: str) -> ApiError:
    return ApiError(HTTPStatus.UNAUTHORIZED, "UNAUTHENTICATED", message)


def too_large(message: str) -> ApiError:
    return ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "INVALID_ARGUMENT", message)


def internal() -> ApiError:
    """A 500 that tells the client nothing of the service's internals (the log has the details)."""
    return ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, "INTERNAL",
                    "Internal error encountered; the local Vertex service's log has the details")


def job_error(status: str, message: str) -> dict:
    """A TuningJob's `error` (google.rpc.Status)."""
    return {"code": RPC_CODES[status], "message": message}


def cancelled_error() -> dict:
    """What Vertex reports on a cancelled job: google.rpc.Code.CANCELLED."""
    return job_error("CANCELLED", "the tuning job was cancelled")
