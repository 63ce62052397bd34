from __future__ import annotations

from pathlib import Path

import pytest
import soundfile
from lhotse import MonoCut, Recording, SupervisionSegment

from omnirouter.data.filters import (
    SkipReason,
    SpeechRateFilterConfig,
    UtteranceLimits,
    speech_rate_problem,
    utterance_problem,
    words_per_second,
)
from omnirouter.data.prepare import PrepareOptions, import_corpus
from omnirouter.data.tokenizer import Tokenizer
from omnirouter.data.validate import CheckOptions
from tests.data.conftest import SENTENCES

RATE = SpeechRateFilterConfig(enabled=True, min_words_per_second=0.5, max_words_per_second=6.0)


def fake_cut(text: str, duration: float) -> MonoCut:
    recording = Recording(id="r", sources=[], sampling_rate=16000, num_samples=16000, duration=1.0)
    supervision = SupervisionSegment("c", "r", 0.0, duration, text=text)
    return MonoCut("c", 0.0, duration, 0, recording=recording, supervisions=[supervision])


def test_words_per_second_counts_normalised_words() -> None:
    assert words_per_second("Hello, world -- [noise] it's me!", 2.0) == pytest.approx(4 / 2.0)
    assert words_per_second("", 3.0) == 0.0


@pytest.mark.parametrize(
    ("words", "seconds", "expected"),
    [
        (3, 1.0, None),  # the expected rate
        (6, 1.0, None),  # at the upper bound
        (13, 2.0, SkipReason.too_fast),  # 6.5 words/s: a looping label
        (1, 2.0, None),  # 0.5 words/s: at the lower bound
        (1, 2.5, SkipReason.too_slow),  # 0.4 words/s: words missing
    ],
)
def test_speech_rate_thresholds(words: int, seconds: float, expected: SkipReason | None) -> None:
    text = " ".join(["word"] * words)
    assert speech_rate_problem(text, seconds, RATE) is expected
    assert speech_rate_problem(text, seconds, SpeechRateFilterConfig()) is None  # off by default


def test_speech_rate_config_checks() -> None:
    with pytest.raises(ValueError, match="min_words_per_second < max_words_per_second"):
        SpeechRateFilterConfig(min_words_per_second=5.0, max_words_per_second=4.0)


def test_utterance_problem_reasons(tmp_path: Path) -> None:
    limits = UtteranceLimits(min_seconds=0.5, max_seconds=10.0, speech_rate=RATE)
    tokenizer = Tokenizer.train(SENTENCES, tmp_path, vocab_size=40)
    cases = [
        (fake_cut("a fine sentence", 2.0), None),
        (fake_cut("too short", 0.2), SkipReason.too_short),
        (fake_cut("too long", 11.0), SkipReason.too_long),
        (fake_cut(" (laughs) ... ", 2.0), SkipReason.empty_transcript),
        (fake_cut("a piñata", 2.0), SkipReason.untokenizable),
        (fake_cut("again " * 20, 2.0), SkipReason.too_fast),
    ]
    for cut, expected in cases:
        assert utterance_problem(cut, limits, tokenizer) is expected


def test_prepare_time_filter_counts_and_spares_test_sets(
    tmp_path: Path, spoken: dict[str, Path]
) -> None:
    items = list(spoken.items())
    path = items[0][1]
    duration = soundfile.info(path).duration
    looping = " ".join(["thank you"] * int(4 * duration))  # about 8 words per second
    rows = [(p, text) for text, p in items[:3]] + [(path, looping), (items[1][1], "yes")]
    table = tmp_path / "pseudo.tsv"
    table.write_text("".join(f"{audio}\t{text}\tu{i}\n" for i, (audio, text) in enumerate(rows)))
    options = PrepareOptions(check=CheckOptions(speech_rate=RATE))
    info = import_corpus(
        tmp_path / "corpus", "pseudo", {"train": table, "test": table}, options=options
    )
    assert info.set("train").num_utterances == 3
    assert info.extra["sets"]["train"] == {"kept": 3, "dropped": {"too_fast": 1, "too_slow": 1}}
    assert info.set("test").num_utterances == 5  # evaluation sets are never filtered
