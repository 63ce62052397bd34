# Set-up, tests and the demo. Everything installs into .venv on first use.
#
# torch: on a machine whose pip can see the CPU wheel `torch==2.13.0` that wheel is taken; anywhere
# else set TORCH_SPEC (for example TORCH_SPEC="torch>=2.6" for the build your pip index serves,
# CUDA included), or install torch into .venv yourself first: an importable torch is kept.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
                   sox libsox-fmt-all fortunes fortunes-min bible-kjv ffmpeg

.PHONY: install system-deps lint format test test-fast demo benchmark gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install "$(TORCH_SPEC)" \
	  || $(BIN)/pip install "torch>=2.6"
	# openai-whisper's own requirements pull triton, which a CPU build does not need; its
	# import-time needs are listed in pyproject.toml instead.
	$(BIN)/pip install --no-deps "openai-whisper>=20240930"
	$(BIN)/pip install -e ".[test]"
	touch $@

# Text-to-speech engines and text sources for the built-in corpus (Debian packages).
system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	fi

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

test: install system-deps lint
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

demo: install system-deps
	$(BIN)/omnirouter experiment configs/experiments/demo.yaml

benchmark: install
	$(BIN)/python benchmarks/moe_layer.py

# The CUDA path on one GPU in a few minutes: MoE layer timings, bf16 training, bf16 decoding
# against fp32 on the CPU (docs/data-path-and-gpus.md, "Checking a GPU"). Without CUDA: one line, and success.
# The corpus it builds needs the text-to-speech engines (make system-deps) unless given --corpus.
gpu-check: install
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
