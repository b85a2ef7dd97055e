# ragmem — every target installs what it needs (idempotent; a no-op when already installed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ragmem-installed
DATA_DIR ?= ./data
CORPUS ?= docs
COLLECTION ?=
HOST ?= 127.0.0.1
PORT ?= 8000
SHARED ?= ../shared
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install index serve test eval bench bench-index bench-query bench-graph bench-live bench-attack bench-first-answer bench-startup bench-revisions bench-gpu bench-cluster clean

install: $(STAMP)

# CPU torch first (a local CPU build): a bare `torch` requirement would pull GBs of CUDA wheels.
# On a machine with an NVIDIA GPU the faiss GPU build replaces faiss-cpu automatically.
# --no-compile, then compileall on every core: pip byte-compiles each wheel on one core (about 65 s
# of a 175 s install on 2 cores), compileall -j 0 the same files in about 44 s. The bytecode must
# exist: where PYTHONDONTWRITEBYTECODE is set, no run would ever write it, and every test
# subprocess would compile torch and ray from source again. Like pip, it ignores the few files
# that do not compile (a torch test file in Python 3.12 syntax): bytecode only saves time. The
# packages' own test suites (13% of the files) are left out.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --no-compile torch==2.13.0
	$(BIN)/pip install --no-compile -e ".[dev,ray]"
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		$(BIN)/pip uninstall -y faiss-cpu && $(BIN)/pip install --no-compile -e ".[dev,ray,gpu]"; fi
	$(BIN)/python -m compileall -qq -j 0 -x '/tests?/' $(VENV)/lib indexing service graphmem eval || true
	touch $(STAMP)

index: install
	$(BIN)/ragmem index "$(CORPUS)" --data-dir "$(DATA_DIR)" $(if $(COLLECTION),--collection "$(COLLECTION)")

# Indexes CORPUS (default: this project's own docs/) and serves it.
serve: index
	$(BIN)/ragmem serve --data-dir "$(DATA_DIR)" --host $(HOST) --port $(PORT) $(if $(wildcard $(SHARED)/corpora),--corpus-root "$(SHARED)/corpora")

test: install
	$(BIN)/python -m pytest -q

eval: install
	$(BIN)/ragmem eval $(if $(wildcard $(SHARED)/bench),$(SHARED)/bench/hotpotqa_100.json $(SHARED)/bench/musique_100.json $(SHARED)/bench/cmrc2018_trial.json $(SHARED)/bench/xquad_en2zh.json $(SHARED)/bench/xquad_zh2en.json,--sample) --data-dir "$(DATA_DIR)"

bench: bench-index bench-query bench-graph bench-live bench-attack bench-first-answer bench-startup

bench-index: install
	$(BIN)/python -m eval.bench_index --shared "$(SHARED)" --out docs/BENCHMARKS.md

bench-query: install
	$(BIN)/python -m eval.bench_query --shared "$(SHARED)" --out docs/BENCHMARKS.md

bench-graph: install
	$(BIN)/python -m eval.bench_graph --shared "$(SHARED)" --out docs/BENCHMARKS.md

bench-live: install
	$(BIN)/python -m eval.bench_live --shared "$(SHARED)" --out docs/BENCHMARKS.md

bench-first-answer: install
	$(BIN)/python -m eval.bench_first_answer --shared "$(SHARED)" --out docs/BENCHMARKS.md

# BASELINE=<git rev> measures that revision beside this checkout, interleaved in the same run.
bench-startup: install
	$(BIN)/python -m eval.bench_startup $(if $(BASELINE),--baseline "$(BASELINE)") --out docs/BENCHMARKS.md

# Query p50 of this checkout against BASELINE=<git rev> (required), served in turn in one run; not part of `make bench`.
bench-revisions: install
	$(BIN)/python -m eval.bench_revisions --baseline "$(BASELINE)" --out docs/BENCHMARKS.md

# Needs a CUDA GPU (exits 2 without one, report unchanged); not part of `make bench`.
bench-gpu: install
	$(BIN)/python -m eval.bench_gpu --shared "$(SHARED)" --out docs/BENCHMARKS.md

# A local multi-node Ray cluster on this host (docs/SCALING.md); not part of `make bench`.
bench-cluster: install
	$(BIN)/python -m eval.bench_cluster --shared "$(SHARED)" --out docs/BENCHMARKS.md

bench-attack: install
	$(BIN)/python -m eval.bench_attack --out docs/BENCHMARKS.md

clean:
	rm -rf $(DATA_DIR) .pytest_cache
