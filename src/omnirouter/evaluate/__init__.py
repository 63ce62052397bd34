"""Evaluation: greedy CTC decoding → Whisper English normaliser → WER, per test set.

decode.py       greedy CTC decoding of log-probs
normalize.py    the text normaliser applied before scoring (and its version)
wer.py          word errors per utterance and per set (jiwer alignments)
recognize.py    running a model over batches: the one path for dev, eval and analysis
set_report.py   the files of one scored set (errs-, recogs-, wer-<set>)
tables.py       one model's table over its sets (`omnirouter eval`)
compare.py      several models side by side, relative reductions (`omnirouter compare`)
model_file.py   reading a trained model's checkpoint for inference (train/ writes it)
suite.py        evaluating a trained model on several sets
transcribe.py   audio files or arrays of any length to text (`omnirouter transcribe`)
"""
