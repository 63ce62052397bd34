"""Public corpora through Lhotse's recipes, from a local copy (nothing is ever downloaded).

Each recipe wraps one `lhotse.recipes.prepare_*` function: it reads the corpus where it lies,
Lhotse writes its own recordings/supervisions manifests under CORPUS_DIR/lhotse/<recipe>/ (and
reuses them on a second run), and every split becomes one set named `<prefix>_<split>`, with
its role taken from the split's name (train*, dev*/valid*, anything else test).

Libriheavy is not a Lhotse recipe: its published cut manifests load directly
(`libriheavy_sets`).
"""

from __future__ import annotations

import inspect
import logging
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from lhotse import CutSet, RecordingSet, SupervisionSet
from lhotse import recipes as lhotse_recipes
from lhotse.cut import Cut
from lhotse.utils import fastcopy

from omnirouter.data.audio import SAMPLE_RATE
from omnirouter.data.errors import DataError, DataFileNotFoundError, UnknownNameError
from omnirouter.data.manifests import PreparedSet, cuts_from_manifests, role_from_name, set_name

log = logging.getLogger(__name__)

Manifests = tuple[tuple[str, ...], RecordingSet, SupervisionSet]


@dataclass(frozen=True)
class Recipe:
    prepare: Callable[..., Any]  # a lhotse.recipes.prepare_* function
    description: str
    defaults: Mapping[str, object] = field(default_factory=dict)  # keyword arguments we choose
    parts_argument: str | None = None  # its argument selecting splits, when it has one
    # Splits one prepared manifest pair into several sets (eval2000 holds two test sets).
    split: Callable[[Manifests], list[Manifests]] | None = None
    # Puts inputs the Lhotse function expects in its output directory (source, scratch, kwargs).
    stage_inputs: Callable[[Path, Path, Mapping[str, Any]], None] | None = None


def _stage_voxpopuli_table(source_dir: Path, scratch: Path, kwargs: Mapping[str, Any]) -> None:
    """Lhotse's VoxPopuli recipe reads its transcript table from its output directory and
    downloads it when absent; we never download, so the table must come with the corpus."""
    table = f"asr_{kwargs.get('lang', 'en')}.tsv.gz"
    if (scratch / table).is_file():
        return
    for candidate in (source_dir / table, source_dir / "transcribed_data" / table):
        if candidate.is_file():
            shutil.copy2(candidate, scratch / table)
            return
    raise DataFileNotFoundError(
        f"{source_dir}: VoxPopuli's transcript table {table} is missing; put it in {source_dir} "
        "(it is distributed beside the audio: nothing is downloaded here)"
    )


def _split_eval2000(manifests: Manifests) -> list[Manifests]:
    # Recording ids start with "sw_" (Switchboard) or "en_" (CallHome English).
    path, recordings, supervisions = manifests
    result = []
    for prefix, part in (("sw_", "switchboard"), ("en_", "callhome")):
        part_recordings = RecordingSet.from_recordings(
            recording for recording in recordings if recording.id.startswith(prefix)
        )
        part_supervisions = SupervisionSet.from_segments(
            segment for segment in supervisions if segment.recording_id.startswith(prefix)
        )
        if len(part_recordings):
            result.append(((*path, part), part_recordings, part_supervisions))
    return result


RECIPES: dict[str, Recipe] = {
    "librispeech": Recipe(
        lhotse_recipes.prepare_librispeech,
        "LibriSpeech read audiobooks",
        parts_argument="dataset_parts",
    ),
    "ami": Recipe(
        lhotse_recipes.prepare_ami,
        "AMI meetings, individual headset microphones",
        defaults={"mic": "ihm", "partition": "full-corpus-asr"},
    ),
    "chime6": Recipe(
        lhotse_recipes.prepare_chime6,
        "CHiME-6 dinner-party conversations, worn (binaural) microphones, downmixed",
        defaults={"mic": "ihm"},
        parts_argument="dataset_parts",
    ),
    "commonvoice": Recipe(
        lhotse_recipes.prepare_commonvoice,
        "Common Voice crowd-sourced read speech",
        defaults={"languages": "en"},
    ),
    "fleurs": Recipe(
        lhotse_recipes.prepare_fleurs,
        "FLEURS read Wikipedia sentences",
        defaults={"languages": "en_us"},
    ),
    "tedlium": Recipe(
        lhotse_recipes.prepare_tedlium,
        "TED-LIUM 3 TED talks",
        parts_argument="dataset_parts",
    ),
    "voxpopuli": Recipe(
        lhotse_recipes.prepare_voxpopuli,
        "VoxPopuli European Parliament speeches",
        defaults={"task": "asr", "lang": "en"},
        stage_inputs=_stage_voxpopuli_table,
    ),
    "eval2000": Recipe(
        lhotse_recipes.prepare_eval2000,
        "Hub5'00 (eval2000): Switchboard and CallHome English telephone conversations",
        defaults={"absolute_paths": True},
        split=_split_eval2000,
    ),
}


def recipe_sets(
    name: str,
    source_dir: str | Path,
    corpus_dir: str | Path,
    parts: Sequence[str] = (),
    options: Mapping[str, str] | None = None,
    prefix: str | None = None,
    num_jobs: int = 1,
) -> list[PreparedSet]:
    """Run recipe `name` on a local corpus copy; one `PreparedSet` per split.

    `parts` keeps only the named splits (e.g. "dev-clean"); `options` are extra keyword
    arguments for the Lhotse function, values written as YAML ("mic=sdm", "num_jobs=4").
    """
    if name not in RECIPES:
        raise UnknownNameError(f"unknown corpus {name!r}; known: {sorted(RECIPES)} and libriheavy")
    recipe = RECIPES[name]
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise DataFileNotFoundError(f"{source_dir}: no such corpus directory")
    kwargs = _arguments(recipe, options or {}, parts, num_jobs)
    scratch = Path(corpus_dir) / "lhotse" / name
    scratch.mkdir(parents=True, exist_ok=True)  # some recipes (tedlium) do not create it
    if recipe.stage_inputs is not None:
        recipe.stage_inputs(source_dir, scratch, kwargs)
    log.info("running lhotse.recipes.%s on %s", recipe.prepare.__name__, source_dir)
    manifests = list(_flatten(recipe.prepare(source_dir, output_dir=scratch, **kwargs)))
    if recipe.split is not None:
        manifests = [piece for item in manifests for piece in recipe.split(item)]
    prepared = []
    for path, recordings, supervisions in manifests:
        if parts and not ({path[-1], "_".join(path)} & set(parts)):
            continue
        prepared.append(
            PreparedSet(
                name=set_name(prefix or name, *path),
                role=role_from_name(path[-1]),
                cuts=cuts_from_manifests(recordings, supervisions),
                description=f"{recipe.description}: {' '.join(path)}",
            )
        )
    if not prepared:
        found = ["_".join(path) for path, _, _ in manifests]
        raise DataError(f"{source_dir}: none of the parts {list(parts)} found; found {found}")
    return prepared


def libriheavy_sets(
    manifest_dir: str | Path, audio_root: str | Path, parts: Sequence[str] = ()
) -> list[PreparedSet]:
    """Libriheavy's published `libriheavy_cuts_<part>.jsonl.gz`, read lazily.

    Their audio paths are relative (`download/librilight/...`): `audio_root` is the directory
    they are relative to. A supervision without `text` takes the first of its `custom.texts`
    (the book's cased, punctuated text in the full release).
    """
    manifest_dir, audio_root = Path(manifest_dir), Path(audio_root)
    paths = sorted(manifest_dir.glob("libriheavy_cuts_*.jsonl.gz"))
    if not paths:
        raise DataFileNotFoundError(f"{manifest_dir}: no libriheavy_cuts_*.jsonl.gz manifests")
    prepared = []
    for path in paths:
        part = path.name.removeprefix("libriheavy_cuts_").removesuffix(".jsonl.gz")
        if parts and part not in parts:
            continue
        cuts = CutSet.from_jsonl_lazy(path).with_recording_path_prefix(audio_root)
        cuts = cuts.map(_with_text).resample(SAMPLE_RATE)
        role = "train" if part in ("small", "medium", "large") else role_from_name(part)
        description = f"Libriheavy {part} (LibriLight audiobooks)"
        prepared.append(PreparedSet(set_name("libriheavy", part), role, cuts, description))
    if not prepared:
        raise DataError(f"{manifest_dir}: none of the parts {list(parts)} found")
    return prepared


def _with_text(cut: Cut) -> Cut:
    supervisions = [
        fastcopy(supervision, text=supervision.custom["texts"][0])
        if not supervision.text and (supervision.custom or {}).get("texts")
        else supervision
        for supervision in cut.supervisions
    ]
    return fastcopy(cut, supervisions=supervisions)


def _arguments(
    recipe: Recipe, options: Mapping[str, str], parts: Sequence[str], num_jobs: int
) -> dict[str, object]:
    parameters = inspect.signature(recipe.prepare).parameters
    kwargs: dict[str, object] = dict(recipe.defaults)
    if "num_jobs" in parameters:
        kwargs["num_jobs"] = num_jobs
    if parts and recipe.parts_argument:
        kwargs[recipe.parts_argument] = list(parts)
    for key, text in options.items():
        if key not in parameters or key in ("output_dir", next(iter(parameters))):
            usable = [p for p in list(parameters)[1:] if p != "output_dir"]
            raise DataError(f"{recipe.prepare.__name__} has no option {key!r}; it takes {usable}")
        kwargs[key] = yaml.safe_load(text)
    return kwargs


def _flatten(manifests: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[Manifests]:
    """Lhotse recipes nest their output by language and/or split; walk down to the pairs."""
    if "recordings" in manifests:
        supervisions = manifests.get("supervisions")
        if supervisions is None:
            log.warning("%s: recordings without transcripts, skipped", "_".join(path))
            return
        yield path, manifests["recordings"], supervisions
        return
    for key, value in manifests.items():
        yield from _flatten(value, (*path, str(key)))
