"""Property: whatever a table file holds, an importer gives a result or one of our own errors
(an `OmnirouterError`, which the command line prints as a message), never another exception.

Inputs are raw bytes, arbitrary text, and tables of plausible shape with arbitrary fields (some
naming a real audio file, so that the rows get past the audio check). Kaldi `wav.scp` commands
are not run: `subprocess.run` answers as a failing command would.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from omnirouter.data import imports
from omnirouter.data.imports import ImportResult, import_source
from omnirouter.errors import OmnirouterError

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

AUDIO_NAME = "good.wav"

# Fields that are sometimes a real file (relative or absolute), sometimes odd, often random.
paths = st.one_of(
    st.sampled_from([AUDIO_NAME, f"./{AUDIO_NAME}", f"x/../{AUDIO_NAME}", "", ".", "/", "x" * 300]),
    st.text(max_size=20),
)
fields = st.text(max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | paths,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=5,
)
json_records = st.dictionaries(
    st.sampled_from(["audio", "path", "text", "id", "speaker", "other"]), json_values
)


def tsv_lines(draw_fields: st.SearchStrategy[list[str]]) -> st.SearchStrategy[bytes]:
    return st.lists(draw_fields.map("\t".join), max_size=6).map(
        lambda lines: "\n".join(lines).encode()
    )


raw_bytes = st.binary(max_size=400)
raw_text = st.text(max_size=400).map(str.encode)
tsv_tables = st.one_of(
    raw_bytes,
    raw_text,
    tsv_lines(st.lists(st.one_of(paths, fields), min_size=1, max_size=4)),
    tsv_lines(st.tuples(paths, fields).map(list)),
    tsv_lines(st.tuples(fields, paths, fields).map(list)).map(
        lambda table: b"text\taudio\tspeaker\n" + table
    ),
)
jsonl_tables = st.one_of(
    raw_bytes,
    raw_text,
    st.lists(json_records.map(json.dumps), max_size=5).map(lambda lines: "\n".join(lines).encode()),
    st.lists(st.one_of(json_values.map(json.dumps), fields), max_size=5).map(
        lambda lines: "\n".join(lines).encode()
    ),
)
kaldi_lines = st.lists(
    st.lists(
        st.one_of(paths, fields, st.sampled_from(["r1", "u1", "-1", "0.5", "1e9", "nan"])),
        max_size=5,
    ).map(" ".join),
    max_size=5,
).map(lambda lines: "\n".join(lines).encode())
kaldi_files = st.one_of(raw_bytes, raw_text, kaldi_lines)
kaldi_dirs = st.fixed_dictionaries(
    {
        "wav.scp": st.one_of(
            kaldi_files, st.just(f"r1 {AUDIO_NAME}\nr2 sox x.wav -t wav - |\n".encode())
        )
    },
    optional={"text": kaldi_files, "segments": kaldi_files, "utt2spk": kaldi_files},
)


@pytest.fixture(scope="module")
def audio_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz_audio") / AUDIO_NAME
    time = np.arange(1600) / 16000
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 440 * time), 16000)
    return path


@pytest.fixture(scope="module")
def no_commands() -> Iterator[None]:
    def failing(command: str, **kwargs: object) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(command, 1, b"", b"not run in this test")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(imports.subprocess, "run", failing)
        yield


def check_import(audio_file: Path, write: Callable[[Path], Path]) -> None:
    """Write the input into a fresh directory beside a copy of the audio file, and import it."""
    with tempfile.TemporaryDirectory() as directory:
        shutil.copy(audio_file, Path(directory) / AUDIO_NAME)
        source = write(Path(directory))
        try:
            result = import_source(source, "test")
        except OmnirouterError:
            return
        assert isinstance(result, ImportResult)
        for cut in result.prepared.cuts:  # audio paths are absolute, whatever the table said
            (audio,) = cut.recording.sources
            assert Path(audio.source).is_absolute() and Path(audio.source).is_file()


@SETTINGS
@given(content=tsv_tables)
def test_any_tsv_table_gives_a_result_or_our_error(audio_file: Path, content: bytes) -> None:
    def write(directory: Path) -> Path:
        (directory / "t.tsv").write_bytes(content)
        return directory / "t.tsv"

    check_import(audio_file, write)


@SETTINGS
@given(content=jsonl_tables, compressed=st.booleans())
def test_any_jsonl_table_gives_a_result_or_our_error(
    audio_file: Path, content: bytes, compressed: bool
) -> None:
    def write(directory: Path) -> Path:
        path = directory / ("t.jsonl.gz" if compressed else "t.jsonl")
        # Compressed: half the time the bytes themselves (rarely a gzip stream), else gzipped.
        data = gzip.compress(content) if compressed and len(content) % 2 else content
        path.write_bytes(data)
        return path

    check_import(audio_file, write)


@SETTINGS
@given(files=kaldi_dirs)
@example(files={"wav.scp": f"r1 {AUDIO_NAME}\n".encode(), "text": b"", "segments": b""})
def test_any_kaldi_dir_gives_a_result_or_our_error(
    audio_file: Path, no_commands: None, files: dict[str, bytes]
) -> None:
    def write(directory: Path) -> Path:
        kaldi = directory / "kaldi"
        kaldi.mkdir()
        for name, content in files.items():
            (kaldi / name).write_bytes(content)
        shutil.copy(audio_file, kaldi / AUDIO_NAME)
        return kaldi

    check_import(audio_file, write)
