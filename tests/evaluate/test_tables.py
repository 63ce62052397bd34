import csv
import json

import pytest

from omnirouter.evaluate.compare import compare_tables, relative_reduction, save_compare_table
from omnirouter.evaluate.normalize import get_normalizer
from omnirouter.evaluate.tables import (
    EvalRow,
    EvalTable,
    eval_table_from_scores,
    read_eval_table,
    save_eval_table,
)
from omnirouter.evaluate.wer import Recognition, score_set
from omnirouter.report.tables import write_compare_pages, write_eval_table_pages

# The paper's Table I (WER %, 2-expert models, 140M dense trunk).
PAPER_TABLE_I = {
    "SpeechCrawl": (6.1, 5.8, 5.4),
    "AMI-IHM": (18.5, 18.3, 17.8),
    "Chime6": (29.3, 29.4, 28.2),
    "CommonVoice": (19.6, 18.9, 16.4),
    "Fleurs": (9.9, 9.0, 8.4),
    "Callhome": (15.3, 15.5, 15.0),
    "Switchboard": (14.1, 14.1, 13.5),
    "Librispeech (clean)": (4.2, 3.9, 3.3),
    "Librispeech (other)": (9.0, 8.4, 7.3),
    "WSJ (nov92)": (4.4, 4.2, 3.7),
    "Tedlium": (4.7, 4.6, 4.2),
    "Voxpopuli": (9.5, 9.1, 8.5),
}


def table(model: str, wers: dict[str, float], roles: dict[str, str] | None = None) -> EvalTable:
    """A table whose rows have the given WERs (in %) over 1000 reference words each."""
    roles = roles or {}
    rows = tuple(
        EvalRow(name, roles.get(name, "test"), 10, 1000, round(10 * wer), 0, 0, wer)
        for name, wer in wers.items()
    )
    return EvalTable(model, rows, "whisper-english", "20250625")


def test_eval_table_averages_test_sets_only():
    raw = get_normalizer("none")
    scores = [
        score_set("dev", [Recognition("d", "a b", "x y")], raw),  # 100 %, not averaged
        score_set("test_a", [Recognition("a", "a b c d", "a b c x")], raw),  # 1 / 4
        score_set("test_b", [Recognition("b", "a b", "a b"), Recognition("c", "", "")], raw),
    ]
    roles = {"dev": "dev", "test_a": "test", "test_b": "test"}
    result = eval_table_from_scores("exp", scores, roles)
    assert [row.wer_percent for row in result.rows] == pytest.approx([100.0, 25.0, 0.0])
    assert result.average_wer_percent == pytest.approx((25.0 + 0.0) / 2)
    assert result.pooled_wer_percent == pytest.approx(100 * 1 / 6)
    # Characters: "a b" → "x y" 2 of 3; "a b c d" → "a b c x" 1 of 7; test_b none of 3.
    assert [row.cer_percent for row in result.rows] == pytest.approx([200 / 3, 100 / 7, 0.0])
    assert [row.reference_chars for row in result.rows] == [3, 7, 3]
    assert result.average_cer_percent == pytest.approx((100 / 7 + 0.0) / 2)


def test_eval_table_files_round_trip(tmp_path):
    raw = get_normalizer("none")
    scores = [score_set("test", [Recognition("a", "a b c d", "a b c")], raw)]
    original = eval_table_from_scores(
        "exp", scores, {"test": "test"}, command="omnirouter eval exp"
    )
    files = write_eval_table_pages(original, save_eval_table(original, tmp_path))
    assert read_eval_table(files.json) == original
    record = json.loads(files.json.read_text())
    assert record["average_wer_percent"] == pytest.approx(25.0)
    assert record["normalizer"] == "none"
    markdown = files.markdown.read_text()
    assert "| test | test | 1 | 4 | 0 | 1 | 0 | 25.00 |" in markdown
    assert "omnirouter eval exp" in markdown
    with files.csv.open() as stream:
        rows = list(csv.reader(stream))
    assert rows[1][0] == "test"
    assert rows[2][0].startswith("average")


def test_a_table_written_before_the_cer_column_still_reads(tmp_path):
    raw = get_normalizer("none")
    scores = [score_set("test", [Recognition("a", "a b c d", "a b c")], raw)]
    files = save_eval_table(eval_table_from_scores("exp", scores, {"test": "test"}), tmp_path)
    record = json.loads(files.json.read_text())
    for row in record["rows"]:
        for key in ("reference_chars", "char_errors", "cer_percent"):
            del row[key]
    files.json.write_text(json.dumps(record))
    old = read_eval_table(files.json)
    assert old.rows[0].wer_percent == pytest.approx(25.0)
    assert old.rows[0].cer_percent is None and old.average_cer_percent is None


def test_read_eval_table_names_the_bad_file(tmp_path):
    path = tmp_path / "wer.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match=r"wer\.json"):
        read_eval_table(path)
    with pytest.raises(FileNotFoundError, match="omnirouter eval"):
        read_eval_table(tmp_path / "missing.json")


def test_relative_reductions_by_hand():
    baseline = table("dense", {"a": 10.0, "b": 20.0, "dev": 50.0}, {"dev": "dev"})
    model = table("omni", {"a": 9.0, "b": 15.0, "dev": 10.0}, {"dev": "dev"})
    result = compare_tables([baseline, model], ["dense", "omni"], baseline="dense")
    assert result.averaged_sets == ("a", "b")
    rows = {row.set_name: row for row in result.rows}
    assert rows["a"].relative_reduction_percent == pytest.approx((0.0, 10.0))  # 1/10
    assert rows["b"].relative_reduction_percent == pytest.approx((0.0, 25.0))  # 5/20
    assert result.mean_wer_percent == pytest.approx((15.0, 12.0))
    assert result.mean_relative_reduction_percent == pytest.approx((0.0, 17.5))  # (10+25)/2
    assert result.reduction_of_mean_wer_percent == pytest.approx((0.0, 20.0))  # (15-12)/15


def test_paper_table_one_gives_its_eleven_point_two_percent():
    names = ["dense", "switch", "omni"]
    tables = [
        table(name, {dataset: wers[m] for dataset, wers in PAPER_TABLE_I.items()})
        for m, name in enumerate(names)
    ]
    result = compare_tables(tables, names)
    # Abstract: omni reduces average WER by 11.2% against dense (mean of per-set reductions).
    assert result.mean_relative_reduction_percent[2] == pytest.approx(11.2, abs=0.05)
    dense = [wers[0] for wers in PAPER_TABLE_I.values()]
    omni = [wers[2] for wers in PAPER_TABLE_I.values()]
    expected = 100 * (sum(dense) - sum(omni)) / sum(dense)
    assert result.reduction_of_mean_wer_percent[2] == pytest.approx(expected)


def test_missing_sets_and_zero_baseline():
    baseline = table("dense", {"a": 0.0, "b": 10.0})
    model = table("omni", {"a": 1.0, "c": 5.0})
    result = compare_tables([baseline, model], ["dense", "omni"])
    rows = {row.set_name: row for row in result.rows}
    assert rows["a"].relative_reduction_percent[1] is None
    assert rows["b"].wer_percent == (10.0, None)
    assert rows["c"].wer_percent == (None, 5.0)
    assert result.averaged_sets == ("a",)
    assert relative_reduction(0.0, 1.0) is None


def test_compare_files(tmp_path):
    baseline = table("dense", {"a": 10.0, "b": 20.0})
    model = table("omni", {"a": 9.0, "b": 15.0})
    compared = compare_tables([baseline, model], ["dense", "omni"])
    files = write_compare_pages(compared, save_compare_table(compared, tmp_path))
    markdown = files.markdown.read_text()
    assert "| a | 10.00 | 9.00 | 10.0 |" in markdown
    assert "17.5" in markdown and "20.0" in markdown
    assert json.loads(files.json.read_text())["baseline"] == "dense"


def test_compare_rejects_unknown_baseline():
    with pytest.raises(ValueError, match="baseline"):
        compare_tables([table("x", {"a": 1.0})], ["x"], baseline="y")
