import json
import math
import random

import jiwer
import pytest

from omnirouter.evaluate.normalize import get_normalizer
from omnirouter.evaluate.set_report import aligned_text, write_set_files
from omnirouter.evaluate.wer import Recognition, score_set

RAW = get_normalizer("none")
WORDS = ("a", "an", "the", "cat", "dog", "sat", "ran", "on", "in", "mat")


def recognitions(*pairs: tuple[str, str]) -> list[Recognition]:
    return [Recognition(f"utt{index}", ref, hyp) for index, (ref, hyp) in enumerate(pairs)]


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance by the textbook dynamic programme."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
            )
        previous = current
    return previous[-1]


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        # (substitutions, deletions, insertions, reference words)
        ("a b c d", "a x c d", (1, 0, 0, 4)),
        ("the cat sat on the mat", "cat sat on the mat", (0, 1, 0, 6)),
        ("one two", "one two three four", (0, 0, 2, 2)),
        ("a b c", "x y z", (3, 0, 0, 3)),
        ("a b c", "", (0, 3, 0, 3)),
        ("a b c d e", "a c d e f", (0, 1, 1, 5)),
    ],
)
def test_hand_counted_errors(reference, hypothesis, expected):
    score = score_set("set", recognitions((reference, hypothesis)), RAW)
    counts = score.counts
    assert (
        counts.substitutions,
        counts.deletions,
        counts.insertions,
        counts.reference_words,
    ) == expected
    substitutions, deletions, insertions, words = expected
    assert score.wer == pytest.approx((substitutions + deletions + insertions) / words)


def random_sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 9)))


def test_set_totals_match_jiwer_on_raw_strings_and_an_edit_distance():
    rng = random.Random(0)
    pairs = [(random_sentence(rng), random_sentence(rng)) for _ in range(60)]
    score = score_set("set", recognitions(*pairs), RAW)
    references, hypotheses = zip(*pairs)
    expected = jiwer.process_words(list(references), list(hypotheses))
    assert score.counts.substitutions == expected.substitutions
    assert score.counts.deletions == expected.deletions
    assert score.counts.insertions == expected.insertions
    assert score.wer == pytest.approx(jiwer.wer(list(references), list(hypotheses)))
    for utterance, (reference, hypothesis) in zip(score.utterances, pairs):
        distance = edit_distance(reference.split(), hypothesis.split())
        assert utterance.counts.errors == distance
        assert utterance.counts.reference_words == len(reference.split())


def test_character_error_rate_is_a_character_edit_distance_over_reference_characters():
    # By hand: "hello world" → "helo world" one deletion, "abc" → "" three: 4 over 11 + 3.
    score = score_set("set", recognitions(("hello world", "helo world"), ("abc", "")), RAW)
    assert score.char_counts.errors == 4
    assert score.char_counts.reference_words == 14
    assert score.cer == pytest.approx(4 / 14)
    # Against the textbook edit distance over characters (spaces included), on random pairs.
    rng = random.Random(1)
    pairs = [(random_sentence(rng), random_sentence(rng)) for _ in range(40)]
    score = score_set("set", recognitions(*pairs), RAW)
    distance = sum(edit_distance(list(ref), list(hyp)) for ref, hyp in pairs)
    assert score.char_counts.errors == distance
    assert score.cer == pytest.approx(distance / sum(len(ref) for ref, _ in pairs))
    # Runs of whitespace are one space, as the words the WER splits off them.
    score = score_set("set", recognitions(("a  b ", " a b"), ("c", "c\t")), RAW)
    assert score.char_counts.errors == 0 and score.char_counts.reference_words == 4


def test_both_sides_are_normalised():
    english = get_normalizer("whisper-english")
    score = score_set(
        "set", recognitions(("Mr. Brown's colour, 25!", "mister brown's color 25")), english
    )
    assert score.counts.errors == 0
    assert score.normalizer == "whisper-english"
    assert score.normalizer_version == english.version


def test_empty_references_count_insertions_but_no_words():
    score = score_set("set", recognitions(("", "a b"), ("x y", "x y"), ("", "")), RAW)
    assert score.counts.insertions == 2
    assert score.counts.reference_words == 2
    assert score.wer == pytest.approx(1.0)
    assert math.isnan(score.utterances[0].counts.wer)
    assert score.utterances[2].counts.errors == 0


def test_reference_that_normalises_to_nothing():
    english = get_normalizer("whisper-english")
    score = score_set("set", recognitions(("Uh, hmm.", ""), ("Um.", "yes")), english)
    assert score.counts.reference_words == 0
    assert score.counts.insertions == 1
    assert math.isnan(score.wer)
    assert math.isnan(score.cer)


def test_empty_set_is_an_error():
    with pytest.raises(ValueError, match="'dev'"):
        score_set("dev", [], RAW)


def test_set_files(tmp_path):
    score = score_set(
        "test_clean", recognitions(("a b c d e", "a x c d e f"), ("g h", "h"), ("", "")), RAW
    )
    files = write_set_files(score, tmp_path)
    errors = files.errors.read_text()
    assert errors.startswith("%WER = 42.86\n")  # (1 sub + 1 ins + 1 del) / 7 reference words
    # Characters: b->x and " f" inserted (3), "g " deleted (2), over 9 + 3 reference characters.
    assert errors.splitlines()[1].startswith("%CER = 41.67 ")
    assert (
        "utt0:\n  ref:   a b c d e\n  hyp:   a x c d e f\n  align: a (b->x) c d e (*->f)" in errors
    )
    assert "  align: (g->*) h" in errors
    assert "1   b -> x" in errors.split("\nSUBSTITUTIONS:")[1]
    assert "1   g" in errors.split("\nDELETIONS:")[1]
    assert "1   f" in errors.split("\nINSERTIONS:")[1]
    per_word = errors.split("\nPER-WORD STATS:")[1].splitlines()[1:]
    # word corr errors in_ref in_hyp: "h" is correct once, appears once on each side
    assert "h   1 0 1 1" in per_word
    assert "b   0 1 1 0" in per_word
    records = [json.loads(line) for line in files.recognitions.read_text().splitlines()]
    assert [record["cut_id"] for record in records] == ["utt0", "utt1", "utt2"]
    assert records[1]["deletions"] == 1
    assert records[2]["wer_percent"] is None
    summary = json.loads(files.summary.read_text())
    assert summary["reference_words"] == 7
    assert summary["wer_percent"] == pytest.approx(100 * 3 / 7)
    assert summary["reference_chars"] == 12 and summary["char_errors"] == 5
    assert summary["cer_percent"] == pytest.approx(100 * 5 / 12)


def test_aligned_text_marks_every_kind_of_error():
    assert (
        aligned_text([("a", "a"), ("b", "c"), ("d", None), (None, "e")]) == "a (b->c) (d->*) (*->e)"
    )
