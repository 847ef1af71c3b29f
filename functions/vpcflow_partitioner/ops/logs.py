"""Logging on an operator's terminal: one human line per warning, JSON lines with -v."""

from __future__ import annotations

import logging

from ..config import SERVICE


def set_log_level(level: int) -> None:
    """Set the level of our logger and of every module's child logger (they carry their own)."""
    for name in [SERVICE, *logging.root.manager.loggerDict]:
        if name.startswith(SERVICE):
            logging.getLogger(name).setLevel(level)
