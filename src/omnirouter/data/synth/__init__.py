"""The built-in speech corpus: English sentences spoken by offline text-to-speech engines.

    config.py    SynthConfig: sets, voice pools, text, prosody, pause and effect ranges
    text.py      sentences from Debian fortunes and the King James Bible, filtered and split
    engines.py   espeak-ng, flite, festival and piper behind one small interface
    effects.py   noise, reverberation and telephone channel for the acoustic-shift sets
    pauses.py    leading, trailing and inner pauses in the training utterances
    plan.py      every utterance decided from the seed before anything is synthesised
    tasks.py     the work units and the worker-process pool
    manifest.py  Lhotse cuts of a finished set
    build.py     build_corpus(config, out_dir, jobs) -> CorpusInfo
    cli.py       `omnirouter data synth`

This package's `__init__` stays light (no Lhotse, no torch): worker processes import it.
"""

from omnirouter.data.synth.config import SynthConfig

__all__ = ["SynthConfig"]
