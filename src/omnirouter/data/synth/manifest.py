"""Lhotse manifests of planned sets whose audio is on disk: one cut, recording and supervision each.

The supervision carries the transcript and, as `speaker`, the voice (`engine:voice`); its
`custom` field keeps what made the utterance (engine, prosody, voice style, text source, pauses,
training condition or test effect settings), so analyses can group utterances by any of them.
"""

from __future__ import annotations

from pathlib import Path

from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

from omnirouter.data.corpus import SetInfo, cuts_path
from omnirouter.data.manifests import portable_paths
from omnirouter.data.synth.plan import PlannedUtterance, SetPlan
from omnirouter.data.synth.sox import written_atomically


def write_set_manifest(plan: SetPlan, corpus_dir: Path) -> SetInfo:
    """Write `cuts_<set>.jsonl.gz` (atomically) and return the set's summary."""
    cuts = [_cut(utterance) for utterance in plan.utterances]
    path = cuts_path(corpus_dir, plan.config.name)
    with written_atomically(path) as partial:
        # Audio named relative to the corpus, so that the directory can be moved or copied.
        CutSet.from_cuts(portable_paths(cut, corpus_dir) for cut in cuts).to_file(partial)
    return SetInfo(
        name=plan.config.name,
        role=plan.config.role.value,
        description=plan.config.description,
        num_utterances=len(cuts),
        hours=round(sum(cut.duration for cut in cuts) / 3600, 4),
    )


def _cut(utterance: PlannedUtterance) -> MonoCut:
    recording = Recording.from_file(utterance.audio_path, recording_id=utterance.id)
    supervision = SupervisionSegment(
        id=utterance.id,
        recording_id=utterance.id,
        start=0.0,
        duration=recording.duration,
        channel=0,
        text=utterance.text,
        language="English",
        speaker=utterance.voice,
        custom=_details(utterance),
    )
    return MonoCut(
        id=utterance.id,
        start=0.0,
        duration=recording.duration,
        channel=0,
        recording=recording,
        supervisions=[supervision],
    )


def _details(utterance: PlannedUtterance) -> dict[str, object]:
    details: dict[str, object] = {
        "domain": utterance.set_name,
        "engine": utterance.engine.value,
        "voice": utterance.engine_voice,
        "speed": utterance.speed,
        "text_source": utterance.text_source,
    }
    if utterance.pitch is not None:
        details["pitch"] = utterance.pitch
    if utterance.pauses is not None:
        details["pauses"] = utterance.pauses.describe()
    if utterance.style is not None and utterance.style.describe():
        details["style"] = utterance.style.describe()
    if utterance.condition is not None:
        details["condition"] = utterance.condition.describe()
    if utterance.effect is not None:
        details["effect"] = utterance.effect.describe()
        details["source_id"] = utterance.source_id
    return details


def manifest_exists(corpus_dir: Path, set_name: str) -> bool:
    return Path(cuts_path(corpus_dir, set_name)).is_file()
