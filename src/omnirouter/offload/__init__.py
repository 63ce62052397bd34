"""Expert offloading beyond the paper (after SpecMD): an expert cache simulated over routing.

cache.py     the trace-driven cache simulator and its eviction policies
predict.py   speculative predictions of the next MoE layer's expert
latency.py   a stated latency model at the paper's sizes
study.py     every policy at every cache size over some models' records, and its JSON form
simulate.py  record routing, simulate, save (`omnirouter offload`)
"""
