# Two commands do all the set-up on a fresh machine (Python 3.11, no GPU, no network beyond package
# registries):  `make demo` (main job on the generated sample dataset) and `make test` (the test suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Keep every run offline and inside the tree (no hub downloads, no DVC analytics or site cache outside).
export HF_HUB_OFFLINE      := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HOME             := $(CURDIR)/.cache/huggingface
export DVC_NO_ANALYTICS    := 1
export DVC_SITE_CACHE_DIR  := $(CURDIR)/.cache/dvc-site
export MPLCONFIGDIR        := $(CURDIR)/.cache/matplotlib
export NUMBA_CACHE_DIR     := $(CURDIR)/.cache/numba
export PIP_NO_CACHE_DIR    := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test bench clean

install: $(STAMP)

# CPU torch first (taken from local disk here); the project's torch range is satisfied by it.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# The main job: the whole DAG (generate the sample dataset, extract, train, evaluate) under DVC. MASA first, and
# its table as soon as it is evaluated; then the other methods, and the full table (printed by the report stage).
DVC := PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc
demo: $(STAMP)
	$(DVC) repro evaluate@sample-masa
	@echo; echo "MASA is trained and evaluated; the other methods follow (full table at the end)."; echo
	@$(BIN)/pipeline -q report
	$(DVC) repro

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

# Untracked outputs and caches only: metrics/, reports/ and losses/ are committed (git checkout restores them).
clean:
	rm -rf data models plots timings dvc_plots .cache
