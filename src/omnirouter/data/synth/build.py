"""Build the built-in corpus: plan, synthesise what is missing, apply effects, write manifests.

    build_corpus(config, out_dir, jobs) -> CorpusInfo

1. check (and if possible install) the engines, voices and text sources the config names;
2. plan every utterance from the seed (`plan.py`); an audio file's name hashes its decisions;
3. synthesise the utterances whose audio file is missing, in worker processes (training
   utterances in their style, `style.py`, and with their pauses, `pauses.py`);
4. apply the training conditions (`conditions.py`) and the test sets' acoustic effects whose
   output is missing;
5. write `cuts_<set>.jsonl.gz` for every set whose plan changed, then `corpus.json` and the
   training text (`text.TRAINING_TEXT_FILE`, what an LM may learn from).

A re-run finds every file in place and only re-reads the plan; a killed run loses at most the
files being written (they are written under temporary names and renamed when complete).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from more_itertools import chunked

from omnirouter.config import config_to_dict
from omnirouter.data.corpus import (
    CorpusInfo,
    SetInfo,
    cuts_path,
    read_corpus_info,
    write_corpus_info,
)
from omnirouter.data.synth.conditions import condition_record
from omnirouter.data.synth.config import Engine, SynthConfig, TextConfig, TextSource, parse_voice
from omnirouter.data.synth.engines import SynthesisJob, engine_for
from omnirouter.data.synth.manifest import manifest_exists, write_set_manifest
from omnirouter.data.synth.plan import (
    AUDIO_DIR,
    PlannedUtterance,
    SetPlan,
    is_planned_audio_name,
    plan_corpus,
)
from omnirouter.data.synth.requirements import Requirement, ensure_requirements
from omnirouter.data.synth.tasks import (
    AudioEditTask,
    ConditionJob,
    EffectJob,
    SynthesisTask,
    Task,
    run_tasks,
)
from omnirouter.data.synth.text import sentence_pool, write_training_text

logger = logging.getLogger(__name__)

DEBIAN_FORTUNES_DIR = TextConfig().fortunes_dir
BUILD_HISTORY = 20  # runs remembered in corpus.json (time, utterances synthesised)


def build_corpus(config: SynthConfig, out_dir: str | Path, jobs: int | None = None) -> CorpusInfo:
    """Build (or bring up to date) the corpus `config` describes in `out_dir`; return its info."""
    started = time.perf_counter()
    corpus_dir = Path(out_dir).resolve()
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    jobs = jobs or os.cpu_count() or 1
    prepare_engines(config)
    plans = plan_corpus(config, corpus_dir)
    previous = _previous_build(corpus_dir)
    synthesis = _synthesis_tasks(plans, config.sample_rate, config.batch_size, jobs)
    conditions = _condition_tasks(plans, config.sample_rate, config.batch_size)
    effects = _effect_tasks(plans, config.sample_rate, config.batch_size)
    touched = {job.path for task in [*synthesis, *conditions, *effects] for job in task.jobs}
    logger.info(
        "%s: %d sets, %d utterances planned; %d to synthesise, %d conditions and effects to apply",
        corpus_dir,
        len(plans),
        sum(len(plan.utterances) for plan in plans),
        sum(map(len, synthesis)),
        sum(map(len, conditions)) + sum(map(len, effects)),
    )
    num_synthesised = run_tasks(synthesis, jobs, "synthesis")
    # Conditions first: an effect set may take its utterances from a training set.
    num_effects = run_tasks(conditions, jobs, "conditions")
    num_effects += run_tasks(effects, jobs, "effects")
    set_infos = []
    for plan in plans:
        if _is_current(plan, previous, corpus_dir, touched):
            set_infos.append(previous.set_infos[plan.config.name])
        else:
            set_infos.append(write_set_manifest(plan, corpus_dir))
    _remove_stale_files(plans, corpus_dir, previous)
    build = {
        "seconds": round(time.perf_counter() - started, 1),
        "jobs": jobs,
        "synthesised": num_synthesised,
        "effects_applied": num_effects,
    }
    extra = _extra(config, plans, set_infos, build)
    extra["build_history"] = [*previous.history, build][-BUILD_HISTORY:]
    info = CorpusInfo(config.name, tuple(set_infos), config.description, extra)
    write_corpus_info(corpus_dir, info)
    write_training_text(config, corpus_dir)
    return info


def prepare_engines(config: SynthConfig) -> None:
    """Install what the config's engines and texts need (or fail naming it), then check voices."""
    voices = sorted({voice for pool in _used_pools(config) for voice in pool})
    requirements: list[Requirement] = []
    for voice in voices:
        parsed = parse_voice(voice)
        requirements += engine_for(parsed.engine).requirements(parsed.name)
    sources = {set_config.text_source for set_config in config.sets if not set_config.is_effect_set}
    if TextSource.bible in sources:
        requirements.append(Requirement("bible-kjv", executable="bible"))
    if TextSource.devil in sources and config.text.devil_path == TextConfig().devil_path:
        requirements.append(Requirement("dict-devil", path=config.text.devil_path))
    if TextSource.fortunes in sources and config.text.fortunes_dir == DEBIAN_FORTUNES_DIR:
        # Package `fortunes` holds most collections; `computers` is one of them.
        requirements.append(Requirement("fortunes", path=f"{DEBIAN_FORTUNES_DIR}/computers"))
    ensure_requirements(requirements)
    for voice in voices:
        parsed = parse_voice(voice)
        try:
            engine_for(parsed.engine).check_voice(parsed.name)
        except ValueError as error:
            raise ValueError(f"voice {voice!r} in the synth config: {error}") from None


def _used_pools(config: SynthConfig) -> list[list[str]]:
    names = {set_config.voice_pool for set_config in config.sets if not set_config.is_effect_set}
    return [config.voice_pools[name] for name in sorted(names)]


def _synthesis_tasks(
    plans: Sequence[SetPlan], sample_rate: int, batch_size: int, jobs: int
) -> list[Task]:
    missing = [
        utterance
        for plan in plans
        if not plan.config.is_effect_set
        for utterance in plan.utterances
        if not utterance.spoken_audio.is_file()
    ]
    # Small builds get smaller batches, so that every worker has several to take.
    batch_size = max(1, min(batch_size, math.ceil(len(missing) / (4 * jobs))))
    tasks: list[Task] = []
    for engine in Engine:
        # Sorted by voice so that a festival batch loads few voices.
        same_engine = sorted((u for u in missing if u.engine is engine), key=lambda u: u.voice)
        for batch in chunked(same_engine, batch_size):
            jobs = tuple(_synthesis_job(utterance) for utterance in batch)
            tasks.append(SynthesisTask(engine, jobs, sample_rate))
    return tasks


def _synthesis_job(utterance: PlannedUtterance) -> SynthesisJob:
    return SynthesisJob(
        utterance.text,
        utterance.engine_voice,
        utterance.speed,
        utterance.pitch,
        utterance.spoken_audio,
        utterance.pauses,
        utterance.style,
    )


def _condition_tasks(plans: Sequence[SetPlan], sample_rate: int, batch_size: int) -> list[Task]:
    jobs = [
        ConditionJob(
            utterance.condition,
            utterance.spoken_audio,
            utterance.audio_path,
            utterance.babble_paths,
        )
        for plan in plans
        for utterance in plan.utterances
        if utterance.condition is not None and not utterance.audio_path.is_file()
    ]
    return [AudioEditTask(tuple(batch), sample_rate) for batch in chunked(jobs, batch_size)]


def _effect_tasks(plans: Sequence[SetPlan], sample_rate: int, batch_size: int) -> list[Task]:
    jobs = [
        EffectJob(utterance.effect, utterance.source_path, utterance.audio_path)
        for plan in plans
        for utterance in plan.utterances
        if utterance.effect is not None
        and utterance.source_path is not None
        and not utterance.audio_path.is_file()
    ]
    return [AudioEditTask(tuple(batch), sample_rate) for batch in chunked(jobs, batch_size)]


def _is_current(
    plan: SetPlan, previous: PreviousBuild, corpus_dir: Path, touched: set[Path]
) -> bool:
    """Whether the set's manifest from the last build still describes it exactly."""
    return (
        previous.fingerprints.get(plan.config.name) == plan.fingerprint
        and plan.config.name in previous.set_infos
        and manifest_exists(corpus_dir, plan.config.name)
        and not any(utterance.audio_path in touched for utterance in plan.utterances)
    )


@dataclass(frozen=True)
class PreviousBuild:
    """What the last completed build in a directory recorded (empty if there was none)."""

    fingerprints: dict[str, str] = field(default_factory=dict)
    set_infos: dict[str, SetInfo] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)


def _previous_build(corpus_dir: Path) -> PreviousBuild:
    try:
        info = read_corpus_info(corpus_dir)
        return PreviousBuild(
            fingerprints=dict(info.extra["fingerprints"]),  # type: ignore[call-overload]
            set_infos={set_info.name: set_info for set_info in info.sets},
            history=list(info.extra.get("build_history", [])),  # type: ignore[call-overload]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return PreviousBuild()  # none, or not written by this builder: rebuild every manifest


def _remove_stale_files(
    plans: Sequence[SetPlan], corpus_dir: Path, previous: PreviousBuild
) -> None:
    """Delete this builder's audio that no plan names (older plans, interrupted writes), and
    the manifests of sets the last build had and this one dropped. Other files are left alone."""
    wanted = {
        path
        for plan in plans
        for utterance in plan.utterances
        for path in (utterance.audio_path, utterance.spoken_audio)
    }
    for set_name in {plan.config.name for plan in plans} | set(previous.set_infos):
        set_dir = corpus_dir / AUDIO_DIR / set_name
        for path in set_dir.iterdir() if set_dir.is_dir() else ():
            if is_planned_audio_name(set_name, path.name) and path not in wanted:
                path.unlink()
        if set_dir.is_dir() and not any(set_dir.iterdir()):
            set_dir.rmdir()
    for set_name in set(previous.set_infos) - {plan.config.name for plan in plans}:
        Path(cuts_path(corpus_dir, set_name)).unlink(missing_ok=True)


def _conditions_summary(plan: SetPlan) -> dict[str, object]:
    """What acoustic conditions a set holds: the share of its utterances of each kind (clean:
    none) and every noise signal, room and codec in it (`conditions.condition_record`)."""
    described = [
        (utterance.condition or utterance.effect).describe()  # type: ignore[union-attr]
        for utterance in plan.utterances
        if utterance.condition is not None or utterance.effect is not None
    ]
    kinds = Counter(str(entry["kind"]) for entry in described)
    total = max(len(plan.utterances), 1)
    shares = {"clean": round(1 - len(described) / total, 4)} if len(described) < total else {}
    shares.update({kind: round(count / total, 4) for kind, count in sorted(kinds.items())})
    return {"shares": shares, **condition_record(described)}


def _extra(
    config: SynthConfig, plans: Sequence[SetPlan], set_infos: Sequence[SetInfo], build: dict
) -> dict[str, object]:
    sets: dict[str, object] = {}
    for plan in plans:
        voices = sorted({utterance.voice for utterance in plan.utterances})
        sets[plan.config.name] = {
            "engines": sorted({parse_voice(voice).engine.value for voice in voices}),
            "voices": voices,
            "text_source": plan.config.text_source.value,
            "text_split": plan.config.text_split.value,
            "effect": plan.config.effect.value if plan.config.effect else None,
            "source_set": plan.config.source_set or None,
            "conditions": _conditions_summary(plan),
        }
    texts = {(s.text_source, s.text_split) for s in config.sets if not s.is_effect_set}
    sentences = {
        f"{source.value}/{split.value}": len(sentence_pool(source, split, config.text))
        for source, split in sorted(texts)
    }
    return {
        "builder": "omnirouter data synth",
        "seed": config.seed,
        "scale": config.scale,
        "sample_rate": config.sample_rate,
        "sets": sets,
        "sentences_available": sentences,
        "hours": round(sum(info.hours for info in set_infos), 4),
        "build": build,
        "fingerprints": {plan.config.name: plan.fingerprint for plan in plans},
        "config": config_to_dict(config),
    }
