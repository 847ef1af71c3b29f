"""Logging on an operator's terminal: one human line per warning, JSON lines with -v."""

from __future__ import annotations

import logging
import sys

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from ..config import SERVICE

# What every LogRecord has; anything else on a record is a structured field of ours.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class HumanFormatter(LambdaPowertoolsFormatter):
    """`warning: object unpartitionable (key=..., reason=...)`: one line a record.

    A powertools formatter still, so that the Logger's append_keys and friends keep working
    (the demo runs the function's handlers in this same process)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            k: v
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_") and v is not None
        }
        detail = ", ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{record.levelname.lower()}: {record.getMessage()}" + (f" ({detail})" if detail else "")
        return line.replace("\n", " ")


class _Stderr:
    """Whatever sys.stderr is when a record is written (tests and rich swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(verbose: bool) -> None:
    """Decisions go to stderr (stdout stays the report): JSON lines with -v, else one human
    line per warning."""
    formatter = LambdaPowertoolsFormatter() if verbose else HumanFormatter()
    existing = logging.getLogger(SERVICE).handlers
    if existing and isinstance(existing[0], logging.StreamHandler):
        # The function's handlers module configured it first (the demo, tests): powertools
        # keeps its first handler, so that is the one to point at stderr.
        existing[0].setStream(_Stderr())  # type: ignore[arg-type]
        existing[0].setFormatter(formatter)
    else:
        Logger(service=SERVICE, logger_handler=logging.StreamHandler(_Stderr()), logger_formatter=formatter)  # type: ignore[arg-type]
    set_log_level(logging.INFO if verbose else logging.WARNING)


def set_log_level(level: int) -> None:
    """Set the level of our logger and of every module's child logger (they carry their own)."""
    for name in [SERVICE, *logging.root.manager.loggerDict]:
        if name.startswith(SERVICE):
            logging.getLogger(name).setLevel(level)
