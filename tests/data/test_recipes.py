from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
from lhotse import CutSet

from omnirouter.cli import main
from omnirouter.cli.data_prepare import CORPUS_HELP
from omnirouter.data.audio import load_audio, load_cut_audio
from omnirouter.data.corpus import cuts_path, read_corpus_info
from omnirouter.data.manifests import cut_text
from omnirouter.data.prepare import prepare_corpus
from omnirouter.data.recipes import RECIPES
from tests.data.conftest import SENTENCES, require_tool, sox

# speaker -> chapter -> number of utterances, per LibriSpeech split
LAYOUT = {
    "dev-clean": {"84": {"121123": 2}, "174": {"50561": 1}},
    "test-clean": {"61": {"70968": 2}},
}


@pytest.fixture(scope="module")
def librispeech(tmp_path_factory: pytest.TempPathFactory, spoken: dict[str, Path]) -> Path:
    """A LibriSpeech tree as distributed: <split>/<speaker>/<chapter>/ with FLAC files and a
    <speaker>-<chapter>.trans.txt of upper-case transcripts."""
    root = tmp_path_factory.mktemp("librispeech") / "LibriSpeech"
    sentences = iter(SENTENCES)
    for split, speakers in LAYOUT.items():
        for speaker, chapters in speakers.items():
            for chapter, count in chapters.items():
                directory = root / split / speaker / chapter
                directory.mkdir(parents=True)
                lines = []
                for index in range(count):
                    utterance = f"{speaker}-{chapter}-{index:04d}"
                    text = next(sentences)
                    sox(spoken[text], "-r", "16000", directory / f"{utterance}.flac")
                    lines.append(f"{utterance} {text.upper()}\n")
                (directory / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))
    return root


def test_librispeech_layout(tmp_path: Path, librispeech: Path) -> None:
    corpus = tmp_path / "corpus"
    info = prepare_corpus("librispeech", librispeech, corpus)
    assert sorted((s.name, s.role, s.num_utterances) for s in info.sets) == [
        ("librispeech_dev_clean", "dev", 3),
        ("librispeech_test_clean", "test", 2),
    ]
    cuts = {cut.id: cut for cut in CutSet.from_file(cuts_path(corpus, "librispeech_dev_clean"))}
    assert sorted(cuts) == ["174-50561-0000", "84-121123-0000", "84-121123-0001"]
    assert cut_text(cuts["84-121123-0001"]) == SENTENCES[1].upper()
    flac = librispeech / "dev-clean" / "84" / "121123" / "84-121123-0001.flac"
    assert cuts["84-121123-0001"].duration == pytest.approx(soundfile.info(flac).duration)
    np.testing.assert_allclose(
        load_cut_audio(cuts["84-121123-0001"]).samples, load_audio(flac).samples
    )
    assert read_corpus_info(corpus).extra["sources"]["librispeech"] == str(librispeech)


def test_parts_and_options(tmp_path: Path, librispeech: Path) -> None:
    info = prepare_corpus(
        "librispeech", librispeech, tmp_path / "c", parts=["test-clean"], prefix="ls"
    )
    assert [s.name for s in info.sets] == ["ls_test_clean"]
    lowered = prepare_corpus(
        "librispeech",
        librispeech,
        tmp_path / "lower",
        parts=["test-clean"],
        recipe_options={"normalize_text": "lower"},
    )
    cuts = CutSet.from_file(cuts_path(tmp_path / "lower", lowered.sets[0].name))
    assert sorted(cut_text(cut) for cut in cuts) == sorted(SENTENCES[3:5])
    with pytest.raises(ValueError, match="has no option 'mic'"):
        prepare_corpus("librispeech", librispeech, tmp_path / "x", recipe_options={"mic": "ihm"})
    with pytest.raises(KeyError, match="unknown corpus 'wsj'"):
        prepare_corpus("wsj", librispeech, tmp_path / "x")


def test_prepare_command(tmp_path: Path, librispeech: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = tmp_path / "corpus"
    assert main(["data", "prepare", "librispeech", str(librispeech), str(corpus)]) == 0
    assert "librispeech_test_clean" in capsys.readouterr().out
    assert sorted(read_corpus_info(corpus).set_names()) == [
        "librispeech_dev_clean",
        "librispeech_test_clean",
    ]
    for name in RECIPES:
        assert name in CORPUS_HELP


def test_libriheavy_manifests_load_directly(tmp_path: Path, spoken: dict[str, Path]) -> None:
    """Cut manifests as published: audio paths relative to download/, texts in custom.texts."""
    root = tmp_path / "libriheavy"
    audio_dir = root / "download" / "librilight" / "small" / "100" / "book"
    audio_dir.mkdir(parents=True)
    long_audio = audio_dir / "chapter.flac"
    sox(*list(spoken.values())[:3], "-r", "16000", long_audio)
    total = soundfile.info(long_audio).duration
    relative = "download/librilight/small/100/book/chapter.flac"
    recording = {
        "id": "small/100/book/chapter",
        "sources": [{"type": "file", "channels": [0], "source": relative}],
        "sampling_rate": 16000,
        "num_samples": soundfile.info(long_audio).frames,
        "duration": total,
        "channel_ids": [0],
    }
    manifests = root / "manifests"
    manifests.mkdir()
    for part, start in (("small", 0.5), ("test_clean", 1.0)):
        cut_id = f"{part}/100/book/chapter_0"
        supervision = {
            "id": cut_id,
            "recording_id": recording["id"],
            "start": 0,
            "duration": 1.5,
            "channel": 0,
            "custom": {"texts": ["The Cased, punctuated text.", "THE CASED PUNCTUATED TEXT"]},
        }
        cut = {
            "id": cut_id,
            "start": start,
            "duration": 1.5,
            "channel": 0,
            "supervisions": [supervision],
            "recording": recording,
            "type": "MonoCut",
        }
        with gzip.open(manifests / f"libriheavy_cuts_{part}.jsonl.gz", "wt") as file:
            file.write(json.dumps(cut) + "\n")
    corpus = tmp_path / "corpus"
    info = prepare_corpus("libriheavy", manifests, corpus, audio_root=root)
    assert sorted((s.name, s.role) for s in info.sets) == [
        ("libriheavy_small", "train"),
        ("libriheavy_test_clean", "test"),
    ]
    (cut,) = CutSet.from_file(cuts_path(corpus, "libriheavy_small"))
    assert cut_text(cut) == "The Cased, punctuated text."
    samples = load_cut_audio(cut).samples
    np.testing.assert_allclose(samples, load_audio(long_audio).samples[8000 : 8000 + 24000])
    with pytest.raises(ValueError, match="needs --audio-root"):
        prepare_corpus("libriheavy", manifests, corpus)


def test_commonvoice_layout(tmp_path: Path, spoken: dict[str, Path]) -> None:
    """<lang>/clips/*.mp3 and <lang>/<split>.tsv, as in a Common Voice release."""
    require_tool("ffmpeg")
    clips = tmp_path / "cv" / "en" / "clips"
    clips.mkdir(parents=True)
    columns = (
        "client_id path sentence up_votes down_votes age gender accents variant locale segment"
    )
    rows = ["\t".join(columns.split())]
    texts = list(spoken)[:2]
    for index, text in enumerate(texts):
        clip = clips / f"common_voice_en_{index}.mp3"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-i", spoken[text], clip], check=True)
        rows.append(f"speaker{index}\t{clip.name}\t{text.capitalize()}.\t2\t0\t\t\t\t\ten\t")
    (tmp_path / "cv" / "en" / "test.tsv").write_text("\n".join(rows) + "\n")
    corpus = tmp_path / "corpus"
    info = prepare_corpus(
        "commonvoice", tmp_path / "cv", corpus, recipe_options={"splits": "[test]"}
    )
    assert [(s.name, s.role, s.num_utterances) for s in info.sets] == [
        ("commonvoice_en_test", "test", 2)
    ]
    cuts = {cut.id: cut for cut in CutSet.from_file(cuts_path(corpus, "commonvoice_en_test"))}
    assert cut_text(cuts["common_voice_en_1"]) == texts[1].capitalize() + "."
    decoded = load_cut_audio(cuts["common_voice_en_1"]).samples
    reference = load_audio(spoken[texts[1]]).samples
    assert abs(len(decoded) - len(reference)) < 0.06 * 16000  # mp3 encoder padding
