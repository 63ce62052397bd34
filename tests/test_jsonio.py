"""The one JSON codec: non-finite numbers written one way, and writes that are whole or nothing."""

import json
import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import pytest

from omnirouter import jsonio


class Colour(str, Enum):
    red = "red"


@dataclass(frozen=True)
class Point:
    name: str
    values: tuple[float, ...]
    colour: Colour
    where: Path
    array: np.ndarray


def test_plain_writes_every_non_finite_number_as_null_and_reads_it_back_as_nan() -> None:
    point = Point("p", (1.5, math.nan, math.inf, -math.inf), Colour.red, Path("a/b"), np.eye(2))
    document = json.loads(jsonio.dumps(point))
    assert document == {
        "name": "p",
        "values": [1.5, None, None, None],
        "colour": "red",
        "where": "a/b",
        "array": [[1.0, 0.0], [0.0, 1.0]],
    }
    assert math.isnan(jsonio.number(document["values"][1]))
    assert jsonio.number(document["values"][0]) == 1.5


def test_a_write_that_fails_midway_leaves_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "errs-dev.txt"
    target.write_text("the previous, complete file\n")
    real_write_text = Path.write_text

    def full_disk(self: Path, text: str, *args: object, **kwargs: object) -> int:
        real_write_text(self, text[:5])  # part of it lands, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError):
        jsonio.write_text(target, "a new text that would replace it\n")
    monkeypatch.undo()
    assert target.read_text() == "the previous, complete file\n"
    assert [path.name for path in tmp_path.iterdir()] == ["errs-dev.txt"]  # no temporary left


def test_a_damaged_result_file_is_an_error_naming_it(tmp_path: Path) -> None:
    damaged = tmp_path / "wer.json"
    damaged.write_text('{"rows": [')
    with pytest.raises(jsonio.ResultFileError, match=r"wer\.json"):
        jsonio.read_json(damaged, "evaluation table")
    with pytest.raises(jsonio.ResultFileError, match="not found"):
        jsonio.read_json(tmp_path / "missing.json")
