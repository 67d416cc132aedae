"""Read labelled training rows from CSV or Parquet, rejecting bad rows by location.

The accepted columns are documented in ``models.train``. Every row goes through
``validate_features`` (the same rules as ``POST /api/predict``), so a value the API would
refuse is not silently trained on either.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.features import (
    FEATURE_INPUTS,
    FLOAT_FIELDS,
    INT_FIELDS,
    PROFILE_COLUMNS,
    FeatureError,
    validate_features,
)
from models.fsutil import sha256_file

LABEL_COLUMN = "churned"
FEATURE_COLUMNS: tuple[str, ...] = FEATURE_INPUTS
NUMERIC_COLUMNS: tuple[str, ...] = (*INT_FIELDS, *FLOAT_FIELDS)
REQUIRED_COLUMNS: tuple[str, ...] = (*FEATURE_COLUMNS, LABEL_COLUMN)
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(c for c in PROFILE_COLUMNS if c not in FEATURE_INPUTS)
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")

_TRUE_LABELS = {"1", "true"}
_FALSE_LABELS = {"0", "false"}
_PARQUET_BATCH_ROWS = 65_536


class TrainingDataError(Exception):
    """Training data cannot be used; the message names the source, the row and the column."""

    def __init__(
        self, source: str, message: str, location: str | None = None, column: str | None = None
    ) -> None:
        parts = [source]
        if location:
            parts.append(location)
        if column:
            parts.append(f"column {column!r}")
        parts.append(message)
        super().__init__(": ".join(parts))
        self.source = source
        self.location = location
        self.column = column
        self.message = message


@dataclass(frozen=True)
class LabelledProfiles:
    """Validated profiles, their 0/1 labels (int64) and where they came from."""

    profiles: list[dict[str, object]]
    labels: np.ndarray
    source: str
    sha256: str | None = None


def _coerce_text(text: str) -> object:
    """Turn a text cell into the int or float it spells, else leave it as text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _parse_label(value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, float) and value in (0.0, 1.0):
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_LABELS:
            return 1
        if text in _FALSE_LABELS:
            return 0
    raise ValueError("must be 0 or 1")


def _parse_row(
    source: str, location: str, row: Mapping[str, object]
) -> tuple[dict[str, object], int]:
    """Validate one row's features and label; raise TrainingDataError naming the cell."""
    values: dict[str, object] = {}
    for column in REQUIRED_COLUMNS:
        value = row.get(column)
        if isinstance(value, str):
            value = value.strip()
            if column in NUMERIC_COLUMNS:
                value = _coerce_text(value)
        if value is None or value == "":
            raise TrainingDataError(source, "empty value", location, column)
        values[column] = value
    try:
        profile = validate_features(values)
    except FeatureError as exc:
        raise TrainingDataError(source, exc.message, location, exc.field) from None
    try:
        label = _parse_label(values[LABEL_COLUMN])
    except ValueError as exc:
        raise TrainingDataError(source, str(exc), location, LABEL_COLUMN) from None
    return profile, label


def _check_columns(source: str, columns: list[str], location: str | None) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise TrainingDataError(source, f"missing columns: {', '.join(missing)}", location)
    duplicated = sorted({column for column in columns if columns.count(column) > 1})
    if duplicated:
        raise TrainingDataError(source, f"duplicated columns: {', '.join(duplicated)}", location)


def _csv_rows(path: Path) -> Iterator[tuple[str, dict[str, object]]]:
    source = str(path)
    # utf-8-sig: spreadsheets often prepend a byte-order mark to the header.
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
            if header is None:
                raise TrainingDataError(source, "file is empty")
            header = [name.strip() for name in header]
            _check_columns(source, header, "line 1")
            for cells in reader:
                if not cells:
                    continue  # blank line
                location = f"line {reader.line_num}"
                if len(cells) != len(header):
                    raise TrainingDataError(
                        source, f"expected {len(header)} fields, got {len(cells)}", location
                    )
                yield location, dict(zip(header, cells, strict=True))
        except csv.Error as exc:
            raise TrainingDataError(
                source, f"malformed CSV: {exc}", f"line {reader.line_num}"
            ) from None
        except UnicodeDecodeError as exc:
            raise TrainingDataError(source, f"not UTF-8 text ({exc.reason})") from None


def _parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, object]]]:
    source = str(path)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TrainingDataError(
            source, "reading Parquet needs pyarrow (pip install 'churn-streamer[parquet]')"
        ) from None
    try:
        parquet = pq.ParquetFile(path)
        columns = list(parquet.schema_arrow.names)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for bad files
        raise TrainingDataError(source, f"not a readable Parquet file: {exc}") from None
    _check_columns(source, columns, None)
    index = 0
    for batch in parquet.iter_batches(
        batch_size=_PARQUET_BATCH_ROWS, columns=list(REQUIRED_COLUMNS)
    ):
        for row in batch.to_pylist():
            yield f"row {index}", row
            index += 1


def load_training_data(path: Path) -> LabelledProfiles:
    """Read and validate a CSV or Parquet training file (chosen by suffix)."""
    source = str(path)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        rows = _csv_rows(path)
    elif suffix in PARQUET_SUFFIXES:
        rows = _parquet_rows(path)
    else:
        raise TrainingDataError(source, f"unsupported file type {suffix!r} (use .csv or .parquet)")
    if not path.is_file():
        raise TrainingDataError(source, "no such file")
    profiles: list[dict[str, object]] = []
    labels: list[int] = []
    try:
        for location, row in rows:
            profile, label = _parse_row(source, location, row)
            profiles.append(profile)
            labels.append(label)
    except OSError as exc:
        raise TrainingDataError(source, f"cannot read: {exc.strerror or exc}") from None
    return LabelledProfiles(
        profiles=profiles,
        labels=np.asarray(labels, dtype=np.int64),
        source=str(path.resolve()),
        sha256=sha256_file(path),
    )
