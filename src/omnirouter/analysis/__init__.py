"""Routing analysis (paper §VI-B): what the models' routers chose, and what that means.

analyze.py             measure trained models' routing on a set and save it (`omnirouter analyze`)
measure.py             one recognition pass per model: routing records, baseline WER, permutations
experiments.py         trained experiment directories as the models to measure
records.py             the expert chosen per layer and frame, captured and saved
summary.py             every number reported of one model's routing
statistics.py          contingency tables, Cramér's V, optimal expert mapping, run lengths
permutation.py         the expert permutation test (Fig. 3)
lookahead.py           the next MoE layer's router applied one layer early (for prefetching)
training.py            training-loss curves and validations from metrics.jsonl (Fig. 6)
experiment_summary.py  what an experiment measured of each model, one value per seed
results.py             an analysis's saved results (results.json), to redraw without models
"""
