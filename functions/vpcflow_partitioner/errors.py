"""The two kinds of failure the pipeline tells apart."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from .scheme import ConfigurationError

# Errors that a retry of the same input cannot fix: the record must reach the DLQ and an
# alarm, every time, rather than be retried quietly or dropped.
_PERMANENT_CODES = {
    "EntityNotFoundException",
    "ResourceNotFoundException",
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidInputException",
    "ValidationException",
    "NoSuchBucket",
    # Glue: a quota (partitions per table, tables per database) is reached; it takes an
    # operator (split the table, prune, raise the quota), not a retry.
    "ResourceNumberLimitExceededException",
}


class TransientError(Exception):
    """An AWS call failed in a way a later retry may not: throttling, 5xx, timeouts."""


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError ("" when there is none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    """The AWS error message of a ClientError ("" when there is none)."""
    return str(exc.response.get("Error", {}).get("Message", ""))


def classify(exc: Exception, what: str) -> Exception:
    """Turn a botocore error into ConfigurationError or TransientError, naming `what`."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = error_message(exc)
        if code in _PERMANENT_CODES:
            return ConfigurationError(f"{what}: {code}: {message}".rstrip(": "))
        return TransientError(f"{what}: {code}: {message}".rstrip(": "))
    if isinstance(exc, BotoCoreError):
        return TransientError(f"{what}: {exc}")
    return exc


class UsageError(ValueError):
    """Bad input from the command line: a flag, a file, a date (exit code 2)."""
