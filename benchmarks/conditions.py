"""How fast each training condition is applied: stored copies or on the fly?

Times, in this one process, every condition of multi-condition training (`data/synth/
conditions.py`: babble, tilted noise, a simulated room, a band limit and codec) and the speed
perturbation of voice styles, on clean training utterances of a built corpus, and prints the
audio seconds each makes per second of one core. Compare them with what a training process
consumes (`benchmarks/train_step.py`: ~300-400 audio-s/s per core for the demo's model, and
~1300 for reading stored log-mels): a condition applied on the fly costs its own time plus a
fresh log-mel (~400-1000 audio-s/s) on every step; a stored copy costs it once, at build time.
Nothing here asserts a time.

Usage: python benchmarks/conditions.py [--corpus data/builtin] [--utterances 40]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import torch

from moe_layer import cpu_name  # benchmarks/ is on the path of a script run from there
from omnirouter.config import load_config
from omnirouter.data.features import FeatureConfig, compute_features
from omnirouter.data.synth.conditions import ConditionSettings, apply_condition
from omnirouter.data.synth.config import Codec, ConditionKind, SynthConfig
from omnirouter.data.synth.plan import plan_corpus
from omnirouter.data.synth.sox import store_wav

RATE = 16000


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (sox runs in children)."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/builtin"))
    parser.add_argument("--config", type=Path, default=Path("configs/data/builtin.yaml"))
    parser.add_argument("--utterances", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core, as in a training process
    config = load_config(SynthConfig, [args.config])
    train = plan_corpus(config, args.corpus.resolve())[0]
    clean = [u.spoken_audio for u in train.utterances if u.spoken_audio.is_file()]
    if len(clean) < args.utterances + 7:
        raise SystemExit(f"{args.corpus}: build it first (omnirouter data synth --out ...)")
    sources, talkers = clean[: args.utterances], clean[-7:]
    seconds = sum(soundfile.info(path).duration for path in sources)
    print(f"{cpu_name()}; {len(sources)} clean training utterances, {seconds:.0f} s of audio")
    cases = {
        "babble (5 talkers, 10 dB)": ConditionSettings(
            ConditionKind.babble, snr_db=10.0, seed=1, babble_ids=("x",) * 5
        ),
        "noise (tilt 1.0, 10 dB)": ConditionSettings(
            ConditionKind.noise, snr_db=10.0, seed=1, noise_exponent=1.0
        ),
        "simulated room (rt60 0.6 s)": ConditionSettings(
            ConditionKind.reverb, rt60=0.6, direct_ratio_db=3.0, seed=1
        ),
        **{
            f"channel, {codec.value}": ConditionSettings(
                ConditionKind.channel, low_cut_hz=200.0, high_cut_hz=3400.0, codec=codec
            )
            for codec in Codec
        },
    }
    print(f"{'work':32s} {'audio-s per core-s':>20s}")
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out.wav"
        for name, settings in cases.items():
            started = cpu_seconds()
            for path in sources:
                apply_condition(settings, path, out, RATE, talkers[:5])
            print(f"{name:32s} {seconds / (cpu_seconds() - started):20.0f}")
        started = cpu_seconds()
        for path in sources:
            store_wav(path, out, RATE, effects=["speed", "1.07", "rate", str(RATE)])
        print(f"{'speed perturbation (sox)':32s} {seconds / (cpu_seconds() - started):20.0f}")
        features = FeatureConfig()
        started = cpu_seconds()
        for path in sources:
            samples, _ = soundfile.read(path, dtype="float32")
            compute_features(np.asarray(samples), RATE, features)
        print(
            f"{'log-mel features (for comparison)':32s} {seconds / (cpu_seconds() - started):20.0f}"
        )


if __name__ == "__main__":
    main()
