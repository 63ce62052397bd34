"""The remaining Lhotse recipes on tiny copies of their corpora, laid out as distributed.

Lhotse reads NIST SPHERE (TED-LIUM, eval2000) only through the `sph2pipe` binary; where it is
not installed, a stand-in script on PATH converts with sox instead (same arguments, same WAV on
stdout), so the recipe and our wrapper still run on real .sph files.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from lhotse import CutSet

from omnirouter.data.audio import SAMPLE_RATE, load_audio, load_cut_audio
from omnirouter.data.corpus import cuts_path
from omnirouter.data.manifests import cut_text
from omnirouter.data.prepare import prepare_corpus
from tests.data.conftest import SENTENCES, require_tool, sox

SPH2PIPE_STAND_IN = """#!/bin/sh
# sph2pipe -f wav -p -t START:[END] FILE, as Lhotse calls it, done by sox.
start=${5%%:*}
end=${5#*:}
if [ -n "$end" ]; then
    exec sox "$6" -t wav - trim "$start" "=$end"
else
    exec sox "$6" -t wav - trim "$start"
fi
"""


@pytest.fixture
def sph2pipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_tool("sox")
    if shutil.which("sph2pipe") is None:
        directory = tmp_path / "bin"
        directory.mkdir()
        script = directory / "sph2pipe"
        script.write_text(SPH2PIPE_STAND_IN)
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")


def duration(path: Path) -> float:
    return soundfile.info(str(path)).duration


def concatenated(
    spoken: dict[str, Path], texts: list[str], path: Path, *options: str
) -> list[tuple[float, float]]:
    """One file of `texts` spoken in turn (each resampled to 16 kHz first); their (start, end)."""
    pieces, spans, start = [], [], 0.0
    for index, text in enumerate(texts):
        piece = path.parent / f"{path.stem}_{index}.wav"
        sox(spoken[text], "-r", str(SAMPLE_RATE), piece)
        pieces.append(piece)
        spans.append((start, start + duration(piece)))
        start += duration(piece)
    sox(*pieces, *options, path)
    for piece in pieces:
        piece.unlink()
    return spans


def set_summary(info: object) -> list[tuple[str, str, int]]:
    return sorted((s.name, s.role, s.num_utterances) for s in info.sets)  # type: ignore[attr-defined]


def read_cuts(corpus: Path, name: str) -> dict[str, object]:
    return {cut.id: cut for cut in CutSet.from_file(cuts_path(corpus, name))}


def spoken_samples(cut: object, spoken: dict[str, Path], text: str, seconds: float) -> np.ndarray:
    """The cut's samples, checked to be as long as `text` spoken alone (to within `seconds`)."""
    samples = load_cut_audio(cut).samples  # type: ignore[arg-type]
    reference = load_audio(spoken[text]).samples
    assert abs(len(samples) - len(reference)) < seconds * SAMPLE_RATE
    return samples


# --- FLEURS: <lang>/<split>/<id>.wav and metadata/<lang>/<split>.tsv (7 columns, no header).


def test_fleurs_layout(tmp_path: Path, spoken: dict[str, Path]) -> None:
    root = tmp_path / "fleurs"
    splits = {"train": SENTENCES[:1], "dev": SENTENCES[1:2], "test": SENTENCES[2:4]}
    (root / "metadata" / "en_us").mkdir(parents=True)
    files = {}
    for split, texts in splits.items():
        (root / "en_us" / split).mkdir(parents=True)
        rows = []
        for index, text in enumerate(texts):
            name = f"{1000 + 10 * len(rows) + index}{split}.wav"
            wav = root / "en_us" / split / name
            sox(spoken[text], "-r", "16000", wav)
            files[text] = wav
            chars = " ".join("|".join(text.split())) + " |"
            raw = text.capitalize() + "."
            frames = soundfile.info(str(wav)).frames
            rows.append(f"{index}\t{name}\t{raw}\t{text}\t{chars}\t{frames}\tFEMALE")
        (root / "metadata" / "en_us" / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    corpus = tmp_path / "corpus"
    info = prepare_corpus("fleurs", root, corpus)
    assert set_summary(info) == [
        ("fleurs_en_us_dev", "dev", 1),
        ("fleurs_en_us_test", "test", 2),
        ("fleurs_en_us_train", "train", 1),
    ]
    cuts = list(read_cuts(corpus, "fleurs_en_us_test").values())
    assert sorted(cut_text(cut) for cut in cuts) == sorted(splits["test"])
    for cut in cuts:
        wav = files[cut_text(cut)]
        assert cut.duration == pytest.approx(duration(wav), abs=1e-3)
        np.testing.assert_allclose(load_cut_audio(cut).samples, load_audio(wav).samples)


# --- TED-LIUM 3: TEDLIUM_release-3/legacy/<split>/{sph,stm}/<talk>.{sph,stm}.


def tedlium_copy(root: Path, spoken: dict[str, Path]) -> Path:
    """The test split of TED-LIUM 3: two talks, three scored segments."""
    talks = {"AimeeMullins_2009P": list(SENTENCES[4:6]), "BillGates_2010": list(SENTENCES[6:7])}
    for kind in ("sph", "stm"):
        (root / "legacy" / "test" / kind).mkdir(parents=True)
    for talk, texts in talks.items():
        sph = root / "legacy" / "test" / "sph" / f"{talk}.sph"
        spans = concatenated(spoken, texts, sph, "-b", "16", "-e", "signed")
        lines = [
            f"{talk} 1 {talk} {start:.2f} {math.floor(end * 100) / 100:.2f} <o,f0,female> {text}"
            for (start, end), text in zip(spans, texts, strict=True)
        ]
        # Stretches not to be scored are marked so in the STM; the recipe leaves them out.
        lines.append(
            f"{talk} 1 inter_segment_gap 0.00 0.10 <o,,unknown> ignore_time_segment_in_scoring"
        )
        (root / "legacy" / "test" / "stm" / f"{talk}.stm").write_text("\n".join(lines) + "\n")
    return root


def test_tedlium_layout(tmp_path: Path, spoken: dict[str, Path], sph2pipe: None) -> None:
    root = tedlium_copy(tmp_path / "TEDLIUM_release-3", spoken)
    corpus = tmp_path / "corpus"
    info = prepare_corpus("tedlium", root, corpus, parts=["test"])
    assert set_summary(info) == [("tedlium_test", "test", 3)]
    cuts = read_cuts(corpus, "tedlium_test")
    assert sorted(cut_text(cut) for cut in cuts.values()) == sorted(SENTENCES[4:7])
    cut = cuts["AimeeMullins_2009P-1"]
    assert cut_text(cut) == SENTENCES[5]
    samples = spoken_samples(cut, spoken, SENTENCES[5], 0.02)  # STM times to 10 ms
    assert len(samples) == pytest.approx(cut.duration * SAMPLE_RATE, abs=2)


def test_tedlium_into_new_corpus_directory(
    tmp_path: Path, spoken: dict[str, Path], sph2pipe: None
) -> None:
    root = tedlium_copy(tmp_path / "TEDLIUM_release-3", spoken)
    info = prepare_corpus("tedlium", root, tmp_path / "corpus", parts=["test"])
    assert set_summary(info) == [("tedlium_test", "test", 3)]


def test_voxpopuli_layout(
    tmp_path: Path, spoken: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_download(url: str, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"the recipe tried to download {url}")

    monkeypatch.setattr("lhotse.recipes.voxpopuli.download_url_to_file", no_download)
    root = tmp_path / "voxpopuli"
    sessions = {
        "20090113-0900-PLENARY-4": (list(SENTENCES[7:9]), "train"),
        "20110405-0900-PLENARY-7": (list(SENTENCES[0:1]), "dev"),
        "20120912-0900-PLENARY-11": (list(SENTENCES[9:10]), "test"),
    }
    header = "session_id|id_|start_time|end_time|speaker_id|split|gender|original_text|normed_text"
    rows = [header]
    for session, (texts, split) in sessions.items():
        directory = root / "raw_audios" / "en" / session[:4]
        directory.mkdir(parents=True, exist_ok=True)
        spans = concatenated(spoken, texts, directory / f"{session}_en.ogg")
        for index, ((start, end), text) in enumerate(zip(spans, texts, strict=True)):
            original = text.capitalize() + "."
            rows.append(
                f"{session}|{session}_{index}|{start}|{end}|{index}|{split}|female|{original}|{text}"
            )
    corpus = tmp_path / "corpus"
    with pytest.raises(FileNotFoundError, match=r"asr_en\.tsv\.gz is missing"):
        prepare_corpus("voxpopuli", root, corpus)
    # The table ships beside the audio; the wrapper hands it to Lhotse (which would download it).
    with gzip.open(root / "asr_en.tsv.gz", "wt") as file:
        file.write("\n".join(rows) + "\n")
    info = prepare_corpus("voxpopuli", root, corpus)
    assert set_summary(info) == [
        ("voxpopuli_dev", "dev", 1),
        ("voxpopuli_test", "test", 1),
        ("voxpopuli_train", "train", 2),
    ]
    cuts = read_cuts(corpus, "voxpopuli_train")
    assert sorted(cuts) == ["20090113-0900-PLENARY-4-1", "20090113-0900-PLENARY-4-2"]
    cut = cuts["20090113-0900-PLENARY-4-2"]
    assert cut_text(cut) == SENTENCES[8]
    spoken_samples(cut, spoken, SENTENCES[8], 0.01)


# --- CHiME-6 (worn microphones): audio/<split>/<session>_P<nn>.wav (binaural, stereo) and
# transcriptions/<split>/<session>.json; every session of the split must be there.


def hms(seconds: float) -> str:
    return f"0:00:{seconds:05.2f}"


def test_chime6_layout(tmp_path: Path, spoken: dict[str, Path]) -> None:
    root = tmp_path / "CHiME6"
    sessions = {"S02": ("P05", list(SENTENCES[10:12])), "S09": ("P25", list(SENTENCES[12:13]))}
    for kind in ("audio", "transcriptions"):
        (root / kind / "dev").mkdir(parents=True)
    for session, (speaker, texts) in sessions.items():
        wav = root / "audio" / "dev" / f"{session}_{speaker}.wav"
        spans = concatenated(spoken, texts, wav, "-c", "2")
        transcript = [
            {
                "end_time": hms(end),
                "start_time": hms(start),
                "words": text.capitalize() + ".",
                "speaker": speaker,
                "session_id": session,
                "location": "kitchen",
            }
            for (start, end), text in zip(spans, texts, strict=True)
        ]
        (root / "transcriptions" / "dev" / f"{session}.json").write_text(json.dumps(transcript))
    corpus = tmp_path / "corpus"
    info = prepare_corpus("chime6", root, corpus, parts=["dev"])
    assert set_summary(info) == [("chime6_dev", "dev", 3)]
    cuts = read_cuts(corpus, "chime6_dev")
    # Kaldi-style normalisation (the recipe's default): lower case, no punctuation.
    assert sorted(cut_text(cut) for cut in cuts.values()) == sorted(SENTENCES[10:13])
    cut = cuts["S02-1"]
    assert cut_text(cut) == SENTENCES[11]
    assert spoken_samples(cut, spoken, SENTENCES[11], 0.02).ndim == 1


# --- eval2000: LDC2002S09/hub5e_00/english/<conv>.sph (two-channel, 8 kHz) and
# LDC2002T43/reference/english/<conv>.txt; sw_* and en_* become two test sets.


def test_eval2000_layout(tmp_path: Path, spoken: dict[str, Path], sph2pipe: None) -> None:
    audio_dir = tmp_path / "LDC2002S09" / "hub5e_00" / "english"
    text_dir = tmp_path / "LDC2002T43" / "reference" / "english"
    audio_dir.mkdir(parents=True)
    text_dir.mkdir(parents=True)
    conversations = {"sw_4390": list(SENTENCES[13:15]), "en_4156": list(SENTENCES[15:16])}
    for conversation, texts in conversations.items():
        sph = audio_dir / f"{conversation}.sph"
        spans = concatenated(spoken, texts, sph, "-c", "2", "-r", "8000", "-b", "16")
        lines = ["#Language: eng", f"#File id: {conversation[3:]}", ""]
        for index, ((start, end), text) in enumerate(zip(spans, texts, strict=True)):
            lines.append(f"{start:.2f} {end:.2f} {'AB'[index % 2]}: {text}")
        (text_dir / f"{conversation}.txt").write_text("\n".join(lines) + "\n")
    corpus = tmp_path / "corpus"
    info = prepare_corpus("eval2000", tmp_path, corpus)
    assert set_summary(info) == [
        ("eval2000_callhome", "test", 1),
        ("eval2000_switchboard", "test", 2),
    ]
    cuts = read_cuts(corpus, "eval2000_switchboard")
    assert sorted(cuts) == ["sw_4390-0", "sw_4390-1"]
    cut = cuts["sw_4390-1"]
    assert cut_text(cut) == SENTENCES[14]
    assert cut.channel == 1  # side B
    spoken_samples(cut, spoken, SENTENCES[14], 0.02)


# --- AMI (individual headsets): <meeting>/audio/<meeting>.Headset-<n>.wav and the NXT
# annotations ami_public_manual_1.6.2/{corpusResources/meetings.xml,segments,words}; the
# recipe needs a meeting in each of train, dev and test of its partition.

AMI_MEETINGS = {  # meeting -> (speaker letter, global speaker, sentence) per headset
    "ES2002a": [("A", "FEE005", SENTENCES[1]), ("B", "MEE006", SENTENCES[2])],
    "ES2011a": [("A", "FEE041", SENTENCES[3])],
    "ES2004a": [("A", "MEE014", SENTENCES[4])],
}
NITE = 'xmlns:nite="http://nite.sourceforge.net/"'


def ami_words(meeting: str, letter: str, text: str, start: float, end: float) -> str:
    """Word-level times spread evenly over the utterance, then a full stop as punctuation."""
    words = text.split()
    step = (end - start) / len(words)
    items = [
        f'<w nite:id="{meeting}.{letter}.words{index}" starttime="{start + index * step:.3f}" '
        f'endtime="{start + (index + 1) * step:.3f}">{word}</w>'
        for index, word in enumerate(words)
    ]
    items.append(
        f'<w nite:id="{meeting}.{letter}.words{len(words)}" starttime="{end:.3f}" '
        f'endtime="{end:.3f}" punc="true">.</w>'
    )
    return f'<nite:root nite:id="{meeting}.{letter}.words" {NITE}>{"".join(items)}</nite:root>'


def test_ami_layout(tmp_path: Path, spoken: dict[str, Path]) -> None:
    annotations = tmp_path / "ami_public_manual_1.6.2"
    for directory in ("corpusResources", "segments", "words"):
        (annotations / directory).mkdir(parents=True)
    meetings_xml = []
    for meeting, headsets in AMI_MEETINGS.items():
        audio_dir = tmp_path / meeting / "audio"
        audio_dir.mkdir(parents=True)
        pieces = [audio_dir / f"{letter}.wav" for letter, _, _ in headsets]
        for piece, (_, _, text) in zip(pieces, headsets, strict=True):
            sox(spoken[text], "-r", "16000", piece)
        lengths = [duration(piece) for piece in pieces]
        total, offset, speakers = sum(lengths), 0.0, []
        # Speakers take turns; each headset is silent while the others speak.
        for channel, (letter, speaker, text) in enumerate(headsets):
            start, end = offset, offset + lengths[channel]
            headset = audio_dir / f"{meeting}.Headset-{channel}.wav"
            sox(pieces[channel], headset, "pad", f"{start}", f"{total - end}")
            pieces[channel].unlink()
            end = math.floor(end * 1000) / 1000  # the recipe drops segments ending past the audio
            segment = (
                f'<segment nite:id="{meeting}.{letter}.seg0" transcriber_start="{start:.3f}" '
                f'transcriber_end="{end:.3f}"/>'
            )
            (annotations / "segments" / f"{meeting}.{letter}.segments.xml").write_text(
                f'<nite:root nite:id="{meeting}.{letter}.segs" {NITE}>{segment}</nite:root>'
            )
            (annotations / "words" / f"{meeting}.{letter}.words.xml").write_text(
                ami_words(meeting, letter, text, start, end)
            )
            speakers.append(
                f'<speaker nxt_agent="{letter}" global_name="{speaker}" channel="{channel}"/>'
            )
            offset = start + lengths[channel]
        meetings_xml.append(f'<meeting observation="{meeting}">{"".join(speakers)}</meeting>')
    (annotations / "corpusResources" / "meetings.xml").write_text(
        f"<meetings {NITE}>{''.join(meetings_xml)}</meetings>"
    )
    corpus = tmp_path / "corpus"
    info = prepare_corpus("ami", tmp_path, corpus)
    assert set_summary(info) == [
        ("ami_dev", "dev", 1),
        ("ami_test", "test", 1),
        ("ami_train", "train", 2),
    ]
    cuts = read_cuts(corpus, "ami_train")
    assert sorted(cuts) == ["ES2002a-0-0", "ES2002a-1-0"]
    cut = cuts["ES2002a-1-0"]
    # Kaldi-style normalisation (the recipe's default): upper case, punctuation dropped.
    assert cut_text(cut) == SENTENCES[2].upper()
    assert cut.supervisions[0].speaker == "MEE006"
    samples = spoken_samples(cut, spoken, SENTENCES[2], 0.01)
    # The cut reads speaker B's headset only (headset A is silent while B speaks).
    audio_dir = tmp_path / "ES2002a" / "audio"
    first = round(cut.start * SAMPLE_RATE)
    span = slice(first, first + len(samples))
    headset_b, _ = soundfile.read(audio_dir / "ES2002a.Headset-1.wav", dtype="float32")
    headset_a, _ = soundfile.read(audio_dir / "ES2002a.Headset-0.wav", dtype="float32")
    np.testing.assert_allclose(samples, headset_b[span])
    assert np.abs(headset_a[span]).max() == 0
    assert np.abs(samples).max() > 0.1
