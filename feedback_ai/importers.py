"""Streamed CSV / JSONL readers with a column mapping, for uploads and the CLI.

Rows come out one at a time as `(row_number, record | None, error | None)`, so a malformed line
is reported by its number and never stops the rest. Bytes that are not valid UTF-8 are kept as
surrogate escapes; validation then rejects that row's text as "not valid UTF-8".
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator, Mapping
from typing import IO, Any, Literal

from feedback_ai.errors import InvalidInput, PayloadTooLarge
from feedback_ai.schemas import FeedbackIn

Format = Literal["csv", "jsonl"]
FIELDS = frozenset(FeedbackIn.model_fields)
Row = tuple[int, dict[str, Any] | None, str | None]


def guess_format(filename: str | None, declared: str | None) -> Format:
    if declared in ("csv", "jsonl"):
        return declared  # type: ignore[return-value]
    if declared:
        raise InvalidInput(
            f"unknown format {declared!r}; use 'csv' or 'jsonl'", {"field": "format"}
        )
    name = (filename or "").lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise InvalidInput("cannot tell the file format: name it .csv/.jsonl or pass format")


def parse_mapping(raw: str | None) -> dict[str, str]:
    """`{"text": "review_body", "created_at": "date"}`: target field -> column in the file."""
    if not raw:
        return {}
    try:
        mapping = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"mapping is not valid JSON: {exc}", {"field": "mapping"}) from None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise InvalidInput("mapping must be a JSON object of field -> column", {"field": "mapping"})
    unknown = sorted(set(mapping) - FIELDS)
    if unknown:
        raise InvalidInput(
            f"mapping names unknown fields {unknown}; known: {sorted(FIELDS)}",
            {"field": "mapping"},
        )
    return mapping


class _Limited(io.RawIOBase):
    """Counts bytes read and fails once the limit is passed (the upload is never read whole)."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self.raw, self.limit, self.seen = raw, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        self.seen += len(data)
        if self.seen > self.limit:
            raise PayloadTooLarge(f"upload is over the limit of {self.limit} bytes")
        buffer[: len(data)] = data
        return len(data)


def _text_stream(raw: IO[bytes], limit: int) -> io.TextIOWrapper:
    reader = io.BufferedReader(_Limited(raw, limit), buffer_size=1 << 16)
    return io.TextIOWrapper(reader, encoding="utf-8", errors="surrogateescape", newline="")


def _from_csv(row: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """CSV: mapped columns and columns named like a field are used; other columns are ignored
    (exports carry many). Empty cells count as absent; a metadata cell is parsed as JSON."""
    record: dict[str, Any] = {}
    for field in FIELDS:
        value = row.get(mapping.get(field, field))
        if value is not None and value != "":
            record[field] = value
    if isinstance(record.get("metadata"), str):
        with contextlib.suppress(json.JSONDecodeError):  # else validation says "not an object"
            record["metadata"] = json.loads(record["metadata"])
    return record


def _from_json(obj: dict[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """JSONL: mapped keys are renamed; every other key must be a field (as in the JSON API)."""
    record = dict(obj)
    for field, key in mapping.items():
        if key in record:
            record[field] = record.pop(key)
    return record


def read_rows(
    raw: IO[bytes],
    fmt: Format,
    mapping: Mapping[str, str] | None = None,
    source: str | None = None,
    limit: int = 50 * 1024 * 1024,
) -> Iterator[Row]:
    mapping = mapping or {}
    stream = _text_stream(raw, limit)
    rows = _csv_rows(stream) if fmt == "csv" else _jsonl_rows(stream)
    convert = _from_csv if fmt == "csv" else _from_json
    for number, row, error in rows:
        if row is None:
            yield number, None, error
            continue
        record = convert(row, mapping)
        if source and "source" not in record:
            record["source"] = source
        yield number, record, None


def _csv_rows(stream: io.TextIOWrapper) -> Iterator[Row]:
    reader = csv.DictReader(stream, strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise InvalidInput(f"CSV header is malformed: {exc}") from None
    if not header:
        raise InvalidInput("CSV file is empty: a header row is needed")
    reader.fieldnames = [h.lstrip("\ufeff").strip() for h in header]
    row_number = 1
    while True:
        row_number += 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield row_number, None, f"malformed CSV: {exc}"
            continue
        if None in row:  # more values than header columns
            yield (
                row_number,
                None,
                f"row has {len(header) + len(row[None])} values; header has {len(header)}",
            )  # type: ignore[index]
            continue
        if any(v is None for v in row.values()):
            yield row_number, None, "row has fewer values than the header"
            continue
        yield row_number, row, None


def _jsonl_rows(stream: io.TextIOWrapper) -> Iterator[Row]:
    for number, line in enumerate(stream, start=1):
        line = line.strip().lstrip("\ufeff")
        if not line:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, None, f"invalid JSON: {exc.msg} at column {exc.colno}"
            continue
        if not isinstance(value, dict):
            yield number, None, f"expected a JSON object, got {type(value).__name__}"
            continue
        yield number, value, None
