from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from omnirouter.data.audio import load_audio, load_cut_audio
from omnirouter.data.corpus import cuts_path, read_corpus_info
from omnirouter.data.features import FeatureConfig, cut_features
from omnirouter.data.filters import SkipReason
from omnirouter.data.imports import import_source
from omnirouter.data.manifests import cut_text, read_manifest
from omnirouter.data.prepare import PrepareOptions, import_corpus
from omnirouter.data.tokenizer import Tokenizer
from omnirouter.data.validate import CheckOptions, CorpusError, check_cut
from tests.data.conftest import SENTENCES, sox, write_tsv

DROP = PrepareOptions(check=CheckOptions(drop_bad=True))


def read_cuts(corpus_dir: Path, set_name: str) -> list:
    return list(read_manifest(cuts_path(corpus_dir, set_name)))


def test_tsv_import(tmp_path: Path, spoken: dict[str, Path]) -> None:
    items = [(path, text) for text, path in list(spoken.items())[:4]]
    table = write_tsv(tmp_path / "train.tsv", items[:3])
    test_table = write_tsv(tmp_path / "test_clean.tsv", items[3:])
    corpus = tmp_path / "corpus"
    info = import_corpus(corpus, "mine", {"train": table, "test_clean": test_table})
    assert read_corpus_info(corpus) == info
    assert [(s.name, s.role, s.num_utterances) for s in info.sets] == [
        ("train", "train", 3),
        ("test_clean", "test", 1),
    ]
    for cut, (path, text) in zip(read_cuts(corpus, "train"), items, strict=False):
        assert cut_text(cut) == text
        assert cut.sampling_rate == 16000  # resampled from espeak-ng's 22.05 kHz when read
        assert cut.duration == pytest.approx(soundfile.info(path).duration, abs=1e-3)
        np.testing.assert_allclose(load_cut_audio(cut).samples, load_audio(path).samples)


def test_tsv_with_header_relative_paths_and_jsonl(tmp_path: Path, spoken: dict[str, Path]) -> None:
    (tmp_path / "audio").mkdir()
    texts = list(spoken)[:2]
    for index, text in enumerate(texts):
        (tmp_path / "audio" / f"{index}.wav").write_bytes(spoken[text].read_bytes())
    header_table = tmp_path / "dev.tsv"
    header_table.write_text(
        "speaker\ttext\taudio\n"
        + "".join(f"spk{i}\t{text}\taudio/{i}.wav\n" for i, text in enumerate(texts))
    )
    jsonl = tmp_path / "test.jsonl.gz"
    with gzip.open(jsonl, "wt") as file:
        for index, text in enumerate(texts):
            file.write(json.dumps({"audio": f"audio/{index}.wav", "text": text, "id": f"u{index}"}))
            file.write("\n")
    corpus = tmp_path / "corpus"
    import_corpus(corpus, "mine", {"dev": header_table, "test": jsonl})
    dev = read_cuts(corpus, "dev")
    assert [cut.id for cut in dev] == ["audio/0", "audio/1"]
    assert [cut.supervisions[0].speaker for cut in dev] == ["spk0", "spk1"]
    assert [cut.id for cut in read_cuts(corpus, "test")] == ["u0", "u1"]
    assert [cut_text(cut) for cut in read_cuts(corpus, "test")] == texts


def make_kaldi_dir(directory: Path, spoken: dict[str, Path]) -> tuple[Path, list[str]]:
    """Two recordings: one file, one concatenation of two utterances behind a sox pipe."""
    directory.mkdir()
    texts = list(spoken)[:3]
    joined = directory / "joined.wav"
    sox(spoken[texts[1]], spoken[texts[2]], joined)
    first = soundfile.info(spoken[texts[1]]).duration
    total = soundfile.info(joined).duration
    (directory / "wav.scp").write_text(f"rec1 {spoken[texts[0]]}\nrec2 sox {joined} -t wav - |\n")
    (directory / "segments").write_text(
        f"utt1 rec1 0.0 -1\nutt2 rec2 0.0 {first:.6f}\nutt3 rec2 {first:.6f} {total:.6f}\n"
    )
    (directory / "text").write_text(
        "".join(f"utt{i + 1} {t.upper()}\n" for i, t in enumerate(texts))
    )
    (directory / "utt2spk").write_text("utt1 a\nutt2 b\nutt3 b\n")
    return directory, texts


@pytest.mark.filterwarnings("ignore:You requested a subset of a recording")
def test_kaldi_dir_with_segments_and_a_pipe(tmp_path: Path, spoken: dict[str, Path]) -> None:
    kaldi_dir, texts = make_kaldi_dir(tmp_path / "kaldi", spoken)
    corpus = tmp_path / "corpus"
    import_corpus(corpus, "kaldi", {"test": kaldi_dir})
    cuts = {cut.id: cut for cut in read_cuts(corpus, "test")}
    assert sorted(cuts) == ["utt1", "utt2", "utt3"]
    assert [cut_text(cuts[f"utt{i + 1}"]) for i in range(3)] == [t.upper() for t in texts]
    assert cuts["utt3"].supervisions[0].speaker == "b"
    for index in (1, 2):
        expected = soundfile.info(spoken[texts[index]]).duration
        assert cuts[f"utt{index + 1}"].duration == pytest.approx(expected, abs=2e-3)
        # The pipe's second segment holds the second sentence's samples.
        samples = load_cut_audio(cuts[f"utt{index + 1}"]).samples
        reference = load_audio(spoken[texts[index]]).samples
        length = min(len(samples), len(reference)) - 200
        correlation = np.corrcoef(samples[100:length], reference[100:length])[0, 1]
        assert correlation > 0.95


def test_kaldi_dir_without_segments(tmp_path: Path, spoken: dict[str, Path]) -> None:
    directory = tmp_path / "kaldi"
    directory.mkdir()
    texts = list(spoken)[:2]
    (directory / "wav.scp").write_text("".join(f"r{i} {spoken[t]}\n" for i, t in enumerate(texts)))
    (directory / "text").write_text("".join(f"r{i} {t}\n" for i, t in enumerate(texts)))
    corpus = tmp_path / "corpus"
    import_corpus(corpus, "kaldi", {"train": directory})
    assert [cut_text(cut) for cut in read_cuts(corpus, "train")] == texts


def test_stereo_files_keep_both_channels(tmp_path: Path) -> None:
    rate = 16000
    time = np.arange(rate) / rate
    left, right = np.sin(2 * np.pi * 300 * time), np.sin(2 * np.pi * 700 * time)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, 0.4 * np.stack([left, right], 1), rate, subtype="FLOAT")
    corpus = tmp_path / "corpus"
    import_corpus(corpus, "stereo", {"test": write_tsv(tmp_path / "t.tsv", [(path, "two tones")])})
    (cut,) = read_cuts(corpus, "test")
    np.testing.assert_allclose(load_cut_audio(cut).samples, 0.2 * (left + right), atol=1e-6)


@pytest.fixture
def bad_table(tmp_path: Path, spoken: dict[str, Path]) -> Path:
    """Five lines: good, missing file, garbage file, zero-length file, empty transcript."""
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio" * 50)
    empty = tmp_path / "empty.wav"
    sox("-n", "-r", "16000", "-c", "1", empty, "trim", "0", "0")
    good = list(spoken.values())
    rows = [
        (good[0], SENTENCES[0]),
        (tmp_path / "missing.wav", "anything"),
        (garbage, "anything"),
        (empty, "anything"),
        (good[1], " [noise] ... "),
    ]
    return write_tsv(tmp_path / "train.tsv", rows)


def test_bad_input_is_an_error_naming_each_file(tmp_path: Path, bad_table: Path) -> None:
    with pytest.raises(CorpusError) as caught:
        import_corpus(tmp_path / "corpus", "bad", {"train": bad_table})
    message = str(caught.value)
    assert "4 unusable utterances" in message
    for name, reason in [
        ("missing.wav", "missing_audio"),
        ("garbage.wav", "unreadable_audio"),
        ("empty.wav", "empty_audio"),
    ]:
        line = next(line for line in message.splitlines() if name in line)
        assert reason in line
    assert "empty_transcript" in message
    assert "--drop-bad" in message
    assert not cuts_path(tmp_path / "corpus", "train").exists()


def test_bad_input_dropped_on_request_and_counted(tmp_path: Path, bad_table: Path) -> None:
    corpus = tmp_path / "corpus"
    info = import_corpus(corpus, "bad", {"train": bad_table}, options=DROP)
    assert info.set("train").num_utterances == 1
    assert info.extra["sets"]["train"] == {
        "kept": 1,
        "dropped": {
            "missing_audio": 1,
            "unreadable_audio": 1,
            "empty_audio": 1,
            "empty_transcript": 1,
        },
    }


def test_characters_the_tokenizer_lacks(tmp_path: Path, spoken: dict[str, Path]) -> None:
    tokenizer = Tokenizer.train(SENTENCES, tmp_path / "tok", vocab_size=40)
    path = next(iter(spoken.values()))
    table = write_tsv(tmp_path / "test.tsv", [(path, "a piñata")])
    options = PrepareOptions(check=CheckOptions(tokenizer=str(tokenizer.model_path)))
    with pytest.raises(CorpusError, match=r"untokenizable: no piece for 'ñ'"):
        import_corpus(tmp_path / "corpus", "x", {"test": table}, options=options)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a.wav\n", r"t.tsv:1: expected 2 or 3 tab-separated columns"),
        ("a.wav\thello\ta\nb.wav\tworld\ta\n", r"t.tsv:2: utterance id 'a' already used on line 1"),
        ("", r"t.tsv: no utterances"),
    ],
)
def test_malformed_tables(tmp_path: Path, content: str, message: str) -> None:
    table = tmp_path / "t.tsv"
    table.write_text(content)
    with pytest.raises(ValueError, match=message):
        import_corpus(tmp_path / "corpus", "x", {"test": table})


def test_malformed_jsonl_and_unknown_source(tmp_path: Path) -> None:
    table = tmp_path / "t.jsonl"
    table.write_text('{"audio": "a.wav"}\n')
    with pytest.raises(ValueError, match=r"t.jsonl:1: needs an audio path and a text"):
        import_corpus(tmp_path / "corpus", "x", {"test": table})
    with pytest.raises(FileNotFoundError, match="no such table file or Kaldi data directory"):
        import_corpus(tmp_path / "corpus", "x", {"test": tmp_path / "nothing.tsv"})


def test_sets_accumulate_in_one_corpus(tmp_path: Path, spoken: dict[str, Path]) -> None:
    items = [(path, text) for text, path in spoken.items()]
    corpus = tmp_path / "corpus"
    import_corpus(corpus, "first", {"train": write_tsv(tmp_path / "a.tsv", items[:2])})
    info = import_corpus(
        corpus,
        "second",
        {"extra_eval": write_tsv(tmp_path / "b.tsv", items[2:3])},
        roles={"extra_eval": "dev"},
    )
    assert info.name == "first"
    assert [(s.name, s.role) for s in info.sets] == [("train", "train"), ("extra_eval", "dev")]


def test_stored_features_on_request(tmp_path: Path, spoken: dict[str, Path]) -> None:
    items = [(path, text) for text, path in list(spoken.items())[:2]]
    corpus = tmp_path / "corpus"
    options = PrepareOptions(store_features=True)
    info = import_corpus(
        corpus, "f", {"test": write_tsv(tmp_path / "t.tsv", items)}, options=options
    )
    assert info.extra["stored_features"]["test"]["num_mel_bins"] == 80
    stored = FeatureConfig(use_stored=True)
    for cut in read_cuts(corpus, "test"):
        assert cut.has_features and Path(cut.features.storage_path).is_relative_to(corpus)
        torch.testing.assert_close(cut_features(cut, stored), cut_features(cut, FeatureConfig()))
    # Another set imported into the same corpus keeps the first set's record beside its own;
    # a set imported again without stored features loses its record with its features.
    table = write_tsv(tmp_path / "o.tsv", items[:1])
    info = import_corpus(corpus, "f", {"other": table}, options=options)
    assert sorted(info.extra["stored_features"]) == ["other", "test"]
    table = write_tsv(tmp_path / "t.tsv", items)
    info = import_corpus(corpus, "f", {"test": table}, options=PrepareOptions(replace_sets=True))
    assert sorted(info.extra["stored_features"]) == ["other"]
    assert not any(cut.has_features for cut in read_cuts(corpus, "test"))


def test_decoding_check_finds_files_changed_since_their_header_was_read(
    tmp_path: Path, spoken: dict[str, Path]
) -> None:
    path = tmp_path / "changed.wav"
    path.write_bytes(next(iter(spoken.values())).read_bytes())
    table = write_tsv(tmp_path / "t.tsv", [(path, "some words")])
    result = import_source(table, "test")
    (cut,) = result.prepared.cuts
    path.write_bytes(b"RIFF garbage" * 100)
    assert check_cut(cut, "test", decode_audio=False, tokenizer=None) is None  # header only
    problem = check_cut(cut, "test", decode_audio=True, tokenizer=None)
    assert problem is not None and problem.reason is SkipReason.unreadable_audio
    assert "changed.wav" in str(problem)
