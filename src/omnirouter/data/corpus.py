"""The on-disk layout every corpus shares, whatever built it (synthesis, a Lhotse recipe, an import).

    CORPUS_DIR/
      corpus.json                 CorpusInfo: the sets, their roles and what each one tests
      cuts_<set>.jsonl.gz         one Lhotse CutSet manifest per set (train, dev, test, ...)
      ...                         audio, features, whatever the builder needs

Training, evaluation and analysis find sets only through this module. In the manifests, audio
and features inside CORPUS_DIR are named relative to it and everything else absolutely, so the
directory can be moved or copied whole (`omnirouter.data.manifests` writes and reads them so).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from omnirouter.data.errors import DataError, DataFileNotFoundError, UnknownNameError

CORPUS_INFO_FILE = "corpus.json"


@dataclass(frozen=True)
class SetInfo:
    name: str  # e.g. "train", "dev", "test", "test_unseen_voices"
    role: str  # "train" | "dev" | "test"
    description: str = ""  # what this set tests, for reports
    num_utterances: int = 0
    hours: float = 0.0


@dataclass(frozen=True)
class CorpusInfo:
    name: str
    sets: tuple[SetInfo, ...]
    description: str = ""
    extra: dict[str, object] = field(default_factory=dict)  # builder details (seed, engines, time)

    def set(self, name: str) -> SetInfo:
        for info in self.sets:
            if info.name == name:
                return info
        raise UnknownNameError(
            f"corpus {self.name!r} has no set {name!r}; it has {self.set_names()}"
        )

    def set_names(self, role: str | None = None) -> list[str]:
        return [info.name for info in self.sets if role is None or info.role == role]


def cuts_path(corpus_dir: str | Path, set_name: str) -> Path:
    return Path(corpus_dir) / f"cuts_{set_name}.jsonl.gz"


def existing_cuts_path(corpus_dir: str | Path, set_name: str) -> Path:
    """`cuts_path`, checked to exist (corpus.json may list a set whose cuts were deleted)."""
    path = cuts_path(corpus_dir, set_name)
    if not path.is_file():
        raise DataFileNotFoundError(
            f"{path}: corpus.json lists set {set_name!r} but its cuts are missing"
        )
    return path


def write_corpus_info(corpus_dir: str | Path, info: CorpusInfo) -> Path:
    path = Path(corpus_dir) / CORPUS_INFO_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(info), indent=2) + "\n")
    return path


def read_corpus_info(corpus_dir: str | Path) -> CorpusInfo:
    path = Path(corpus_dir) / CORPUS_INFO_FILE
    if not path.is_file():
        raise DataFileNotFoundError(
            f"{path} not found: is {corpus_dir} a prepared corpus? "
            "Build one with `omnirouter data synth` or `omnirouter data prepare`."
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        sets = tuple(SetInfo(**entry) for entry in raw.pop("sets"))
        return CorpusInfo(sets=sets, **raw)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise DataError(f"{path}: not a corpus description ({error})") from None
