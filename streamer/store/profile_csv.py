"""Reading static profile attributes from CSV, row by row, with line-numbered errors."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.features import DEFAULT_CONTRACT, DEFAULT_PLAN, Contract, Plan


class StaticProfile(BaseModel):
    """Static attributes of one customer, as loaded from a profile file.

    Its fields are ``models.features.PROFILE_COLUMNS``, with their types there.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    customer_id: str = Field(min_length=1, max_length=256)
    plan: Plan = DEFAULT_PLAN
    contract: Contract = DEFAULT_CONTRACT
    tenure_months: int = Field(0, ge=0, le=1200)
    monthly_spend: float = Field(0.0, ge=0)
    country: str = Field("", max_length=2)


@dataclass(frozen=True)
class RowError:
    """A row that could not be loaded."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ProfileFileError(ValueError):
    """The file as a whole cannot be read (missing, not CSV, no customer_id column)."""


def read_profiles(path: Path) -> Iterator[StaticProfile | RowError]:
    """Yield each row as a `StaticProfile`, or a `RowError` naming its line and field."""
    try:
        # surrogateescape: a row with bytes that are not UTF-8 is reported by its line
        # number instead of failing the whole file.
        handle = path.open(newline="", encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise ProfileFileError(f"cannot open {path}: {exc.strerror or exc}") from None
    if not path.is_file():
        handle.close()
        raise ProfileFileError(f"cannot open {path}: not a regular file")
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ProfileFileError(f"{path} is not a UTF-8 CSV file: {exc}") from None
        if header and any(_not_utf8(name) for name in header):
            raise ProfileFileError(f"{path} is not a UTF-8 CSV file (header line)")
        if not header or "customer_id" not in header:
            raise ProfileFileError(f"{path}: header must include customer_id")
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (UnicodeDecodeError, csv.Error) as exc:
                yield RowError(reader.line_num, f"unreadable row: {exc}")
                continue
            if None in row:
                yield RowError(reader.line_num, "more values than header columns")
                continue
            if any(_not_utf8(value) for value in row.values() if isinstance(value, str)):
                yield RowError(reader.line_num, "not valid UTF-8")
                continue
            values = {key: value for key, value in row.items() if value not in (None, "")}
            try:
                yield StaticProfile.model_validate(values)
            except ValidationError as exc:
                error = exc.errors(include_url=False)[0]
                field = ".".join(str(part) for part in error["loc"])
                yield RowError(reader.line_num, f"{field}: {error['msg']}")


def _not_utf8(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)
