"""Saved events for `replay`: files, .gz files and standard input, JSON or NDJSON, streamed.

A file is read line by line when its first line is a JSON document of its own (NDJSON, or a
one-line event), so memory stays flat however long it is; otherwise it is one document
(pretty-printed JSON, as `aws s3 cp` or an editor leaves it), read whole. A UTF-8 byte-order
mark is skipped; gzip is recognised by its magic number, not by the file name.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import json
import os
import zlib
from collections.abc import Iterator
from typing import IO, Any

from ..envelopes import Message, message_from_body, unwrap
from ..errors import UsageError

NOT_JSON = object()  # stands for a line that is not JSON (a malformed message, counted)
_GZIP_MAGIC = b"\x1f\x8b"


class EventFile:
    """One input: a path, or "-" for standard input."""

    def __init__(self, path: str, stdin: IO[bytes]) -> None:
        self.path = path
        self.name = "standard input" if path == "-" else path
        try:
            raw: Any = stdin if path == "-" else open(path, "rb")  # noqa: SIM115 (closed in close())
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        # peek() needs a buffered reader; standard input may be a plain stream in tests
        self._raw: Any = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
        self.size: int | None = None
        if path != "-":
            self.size = os.fstat(raw.fileno()).st_size
        self._stream: Any = self._raw
        try:
            head = self._raw.peek(2)[:2]
        except OSError as exc:
            raise UsageError(f"cannot read {self.name}: {exc.strerror or exc}") from None
        if head == _GZIP_MAGIC:
            self._stream = gzip.GzipFile(fileobj=self._raw)

    def position(self) -> int:
        """Bytes of the file (compressed, for gzip) read so far."""
        try:
            return self._raw.tell()
        except OSError:  # a pipe
            return 0

    def events(self) -> Iterator[tuple[str, Any]]:
        """(label, JSON document) in order; NOT_JSON for a line of an NDJSON file that is not JSON."""
        text = io.TextIOWrapper(self._stream, encoding="utf-8-sig")
        try:
            yield from self._documents(text)
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"cannot read {self.name}: not UTF-8 text or gzip of it ({exc.reason})"
            ) from None
        except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt gzip stream
            raise UsageError(f"cannot read {self.name}: {exc}") from None
        finally:
            # The wrapper would close the file (or standard input) when collected; a file the
            # caller closed already (a generator dropped halfway) has nothing to detach.
            with contextlib.suppress(ValueError):
                text.detach()

    def _documents(self, text: io.TextIOWrapper) -> Iterator[tuple[str, Any]]:
        lines = ((n, line) for n, line in enumerate(text, start=1) if line.strip())
        first = next(lines, None)
        if first is None:
            return
        head = [first]
        if _loads(first[1]) is NOT_JSON:
            # The first line of a pretty-printed document, or a broken first line of an NDJSON
            # file: the next line tells them apart (in NDJSON it is a document of its own).
            second = next(lines, None)
            if second is not None:
                head.append(second)
            if second is None or _loads(second[1]) is NOT_JSON:
                whole = "".join(line for _, line in head) + text.read()
                try:
                    yield self.path, json.loads(whole)
                    return
                except ValueError:  # no document either: say so line by line
                    lines = (
                        (first[0] + i, line) for i, line in enumerate(whole.splitlines()) if line.strip()
                    )
                    head = []
        for number, line in itertools.chain(head, lines):  # streamed: never the whole file
            yield f"{self.path}:{number}", _loads(line)

    def close(self) -> None:
        if self.path != "-":
            self._raw.close()

    def __enter__(self) -> EventFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _loads(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return NOT_JSON


def events_to_messages(label: str, event: Any) -> list[Message]:
    """Messages of one saved event in any envelope; a line that is not JSON is malformed.

    Also what people save: a JSON array of events (`jq -s`), and `aws sqs receive-message`
    output ({"Messages": [{"MessageId", "Body"}]}), each body an event as SQS carried it.
    """
    if event is NOT_JSON:
        return [Message(label, malformed="not JSON")]
    if isinstance(event, list):
        return [m for i, item in enumerate(event) for m in events_to_messages(f"{label}[{i}]", item)]
    if isinstance(event, dict) and isinstance(event.get("Messages"), list) and "Records" not in event:
        return [
            message_from_body(f"{label}#{m.get('MessageId', i)}", str(m.get("Body", "")))
            if isinstance(m, dict)
            else Message(f"{label}[{i}]", malformed="not an SQS message")
            for i, m in enumerate(event["Messages"])
        ]
    envelope = unwrap(event)
    if envelope.kind == "direct":
        return [Message(label, m.objects, m.ignored, m.malformed) for m in envelope.messages]
    return [Message(f"{label}#{m.id}", m.objects, m.ignored, m.malformed) for m in envelope.messages]
