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
                   sox libsox-fmt-all fortunes fortunes-min bible-kjv dict-devil ffmpeg
# KenLM (word n-gram LMs for beam search): its Python module and its lmplz/build_binary tools
# are compiled from the `kenlm` source package.
SYSTEM_PACKAGES += g++ make cmake python3-dev zlib1g-dev libboost-program-options-dev \
                   libboost-system-dev libboost-thread-dev libboost-test-dev libeigen3-dev
KENLM_TOOLS := $(BIN)/lmplz
KENLM_BUILD := $(VENV)/cache/kenlm

.PHONY: install system-deps lint format test test-fast demo benchmark gpu-check clean

install: $(STAMP) $(KENLM_TOOLS)

# The system packages come first: pip compiles the kenlm module.
$(STAMP): pyproject.toml | system-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install "$(TORCH_SPEC)" \
	  || $(BIN)/pip install "torch>=2.6"
	# openai-whisper's own requirements pull triton, which a CPU build does not need; its
	# import-time needs are listed in pyproject.toml instead.
	$(BIN)/pip install --no-deps "openai-whisper>=20240930"
	$(BIN)/pip install -e ".[test]"
	# pyctcdecode's metadata caps numpy below 2, which it runs on: its one other need (pygtrie)
	# is in pyproject.toml.
	$(BIN)/pip install --no-deps "pyctcdecode>=0.5"
	touch $@

# KenLM's estimator (lmplz, the target) and binary writer (build_binary), built from the source package of the kenlm version that
# pip installed (a few minutes on two cores), into .venv/bin where `omnirouter lm` finds them.
$(KENLM_TOOLS): | $(STAMP)
	rm -rf $(KENLM_BUILD) && mkdir -p $(KENLM_BUILD)
	$(BIN)/pip download --no-deps --no-binary kenlm -d $(KENLM_BUILD) \
	  "kenlm==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("kenlm"))')"
	tar -xzf $(KENLM_BUILD)/kenlm-*.tar.gz -C $(KENLM_BUILD) --strip-components 1
	cmake -S $(KENLM_BUILD) -B $(KENLM_BUILD)/build -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(KENLM_BUILD)/build -j $$(nproc) --target lmplz build_binary
	cp $(KENLM_BUILD)/build/bin/lmplz $(KENLM_BUILD)/build/bin/build_binary $(BIN)/
	rm -rf $(KENLM_BUILD)

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
