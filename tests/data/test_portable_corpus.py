"""Imported audio paths are taken from the table's folder, and a corpus keeps working when its
directory is moved: audio inside it is named relative to it, audio outside it absolutely."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from omnirouter.cli import main
from omnirouter.data.audio import load_audio, load_cut_audio
from omnirouter.data.config import DataConfig
from omnirouter.data.corpus import cuts_path
from omnirouter.data.loader import build_eval_loader, eval_cuts
from omnirouter.data.manifests import read_set_cuts
from omnirouter.data.prepare import train_corpus_tokenizer
from omnirouter.data.tokenizer import TokenizerConfig


def stored_sources(corpus_dir: Path, set_name: str) -> dict[str, str]:
    """Utterance id -> the audio path as the manifest file holds it (no resolution)."""
    with gzip.open(cuts_path(corpus_dir, set_name), "rt") as file:
        cuts = [json.loads(line) for line in file]
    return {cut["id"]: cut["recording"]["sources"][0]["source"] for cut in cuts}


def copy_audio(spoken: dict[str, Path], directory: Path, count: int) -> list[tuple[str, str]]:
    """`count` of the spoken sentences copied to directory/<index>.wav: (file name, text)."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, (text, path) in enumerate(list(spoken.items())[:count]):
        shutil.copy(path, directory / f"{index}.wav")
        rows.append((f"{index}.wav", text))
    return rows


def test_a_corpus_imported_with_relative_paths_works_after_a_move(
    tmp_path: Path, spoken: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `cd DIR && omnirouter data import $PWD --set train=train.tsv --set dev=dev.jsonl`, with
    # the audio in DIR/audio and a test set whose audio lies outside DIR.
    corpus = tmp_path / "corpus"
    rows = copy_audio(spoken, corpus / "audio", 4)
    (corpus / "train.tsv").write_text("".join(f"audio/{name}\t{text}\n" for name, text in rows[:3]))
    (corpus / "dev.jsonl").write_text(
        json.dumps({"audio": f"audio/{rows[3][0]}", "text": rows[3][1], "id": "dev0"}) + "\n"
    )
    outside = tmp_path / "elsewhere"
    outside_rows = copy_audio(spoken, outside, 1)
    (outside / "test.tsv").write_text(f"{outside_rows[0][0]}\t{outside_rows[0][1]}\n")
    monkeypatch.chdir(corpus)
    sets = [
        "--set",
        "train=train.tsv",
        "--set",
        "dev=dev.jsonl",
        "--set",
        "test=../elsewhere/test.tsv",
    ]
    assert main(["data", "import", str(corpus), *sets]) == 0

    assert sorted(stored_sources(corpus, "train").values()) == [f"audio/{n}" for n, _ in rows[:3]]
    assert stored_sources(corpus, "dev") == {"dev0": "audio/3.wav"}
    assert stored_sources(corpus, "test") == {"0": str(outside / "0.wav")}  # no "corpus/.."

    moved = tmp_path / "moved" / "corpus"
    shutil.move(corpus, moved)
    monkeypatch.chdir(tmp_path)
    cuts = list(read_set_cuts(moved, ["train", "dev", "test"]))
    sources = {cut.id: Path(cut.recording.sources[0].source) for cut in cuts}
    inside = {f"audio/{index}": moved / "audio" / f"{index}.wav" for index in range(3)}
    assert sources == {**inside, "dev0": moved / "audio" / "3.wav", "0": outside / "0.wav"}
    for cut in cuts:
        reference = load_audio(sources[cut.id]).samples
        np.testing.assert_allclose(load_cut_audio(cut).samples, reference)

    # What training and evaluation read: every utterance of the moved corpus gives a batch row.
    config = DataConfig(corpus_dir=str(moved), num_workers=0, tokenizer=TokenizerConfig(40))
    tokenizer = train_corpus_tokenizer(moved, config.tokenizer)
    for set_name, count in (("train", 3), ("dev", 1), ("test", 1)):
        batches = list(build_eval_loader(config, set_name, tokenizer))
        assert sum(batch.size for batch in batches) == count
    assert [cut.id for cut in eval_cuts(config, "dev")] == ["dev0"]


def test_kaldi_paths_are_taken_from_the_data_directory(
    tmp_path: Path, spoken: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "corpus"
    kaldi = corpus / "kaldi"
    rows = copy_audio(spoken, kaldi / "wav", 2)
    (kaldi / "wav.scp").write_text(
        "".join(f"r{i} wav/{name}\n" for i, (name, _) in enumerate(rows))
    )
    (kaldi / "text").write_text("".join(f"r{i} {text}\n" for i, (_, text) in enumerate(rows)))
    monkeypatch.chdir(tmp_path)  # not the data directory
    assert main(["data", "import", "corpus", "--set", "test=corpus/kaldi"]) == 0
    assert stored_sources(corpus, "test") == {"r0": "kaldi/wav/0.wav", "r1": "kaldi/wav/1.wav"}

    moved = tmp_path / "copy"
    shutil.copytree(corpus, moved)
    shutil.rmtree(corpus)
    for cut in read_set_cuts(moved, ["test"]):
        assert Path(cut.recording.sources[0].source).parent == moved / "kaldi" / "wav"
        assert load_cut_audio(cut).samples.size > 0
