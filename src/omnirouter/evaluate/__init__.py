"""Evaluation: greedy CTC decoding → Whisper English normaliser → WER, per test set.

decode.py       greedy CTC decoding of log-probs
lm.py           word n-gram LMs: building one with KenLM (`omnirouter lm build`), loading it
beam.py         CTC beam search with a word LM (pyctcdecode), in parallel over utterances
prefix_search.py  pyctcdecode's prefix search, reading sentencepiece pieces correctly
lm_tune.py      LM weight and word score tuned on a dev set (`omnirouter lm tune`)
normalize.py    the text normaliser applied before scoring (and its version)
wer.py          word errors per utterance and per set (jiwer alignments)
recognize.py    running a model over batches: the one path for dev, eval and analysis
set_report.py   the files of one scored set (errs-, recogs-, wer-<set>)
tables.py       one model's table over its sets (`omnirouter eval`)
compare.py      several models side by side, relative reductions (`omnirouter compare`)
model_file.py   reading a trained model's checkpoint for inference (train/ writes it), and
                exporting it as safetensors + JSON config (`omnirouter export`)
suite.py        evaluating a trained model on several sets
vad.py          where the speech is (Silero voice-activity detection)
transcribe.py   audio files or arrays of any length to text (`omnirouter transcribe`)
"""
