"""The one JSON codec of every saved result: evaluation tables, routing analyses, offloading
studies, proposal sweeps, the experiment's numbers.

`plain` turns a result into JSON values, whatever it is made of: dataclasses become objects of
their fields, tuples and numpy arrays lists, enums their values, paths POSIX strings. JSON has no
NaN or infinity, so every non-finite float is written the one same way, as `null`, and `number`
reads a `null` back as NaN. Files are written whole or not at all (a temporary file, then a
rename), so a full disk or a kill never leaves half a result behind; `write_text` does the same
for the other files of a result (per-utterance errors and recognitions).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from omnirouter.errors import OmnirouterError


class ResultFileError(OmnirouterError, ValueError):
    """A saved result that is missing, not JSON, or not of the expected form."""


def plain(value: object) -> Any:
    """`value` as JSON values: non-finite floats as None, containers recursively."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: plain(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, Mapping):
        return {str(plain(key)): plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def number(value: float | int | None) -> float:
    """A saved float back: `null` (how every non-finite number was written) is NaN."""
    return math.nan if value is None else float(value)


def dumps(value: object, indent: int | None = 1) -> str:
    """JSON text of `plain(value)`; `allow_nan=False` proves no NaN slipped through."""
    return json.dumps(plain(value), indent=indent, ensure_ascii=False, allow_nan=False)


def write_json(path: str | Path, value: object, indent: int | None = 1) -> Path:
    """Write `value` as JSON to `path` atomically (parents created), with a final newline."""
    return write_text(path, dumps(value, indent) + "\n")


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` whole or not at all: a full disk or a kill mid-write leaves the
    previous file (or none), never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read_json(path: str | Path, what: str = "result file") -> Any:
    """The JSON value in `path`; a missing or unreadable file is a `ResultFileError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ResultFileError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultFileError(f"{path}: not a readable {what} ({error})") from None
