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

.PHONY: install demo demo-all test bench clean one-opencv

install: $(STAMP)

# CPU torch first (taken from local disk here); the project's torch range is satisfied by it.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	$(MAKE) --no-print-directory one-opencv
	touch $(STAMP)

# One OpenCV distribution: opencv-contrib-python (MediaPipe's, a superset of OpenCV's main modules) must be the
# only owner of the cv2/ folder that every OpenCV wheel writes. Another one left by an older install (the project
# used opencv-python-headless before pose estimation) is removed, and contrib's files, which that removal
# deletes from the shared folder, are put back.
CV2_OWNERS = $(BIN)/python -c "import importlib.metadata as m; print(' '.join(sorted({d.metadata['Name'] \
	for d in m.distributions() if any(str(f).startswith('cv2/') for f in (d.files or []))})))"
CONTRIB_VERSION = $(BIN)/python -c "import importlib.metadata as m; print(m.version('opencv-contrib-python'))"
one-opencv:
	@others="$$($(CV2_OWNERS) | tr ' ' '\n' | grep -vx opencv-contrib-python)"; \
	if [ -n "$$others" ]; then \
	  echo "removing $$others (opencv-contrib-python owns cv2)"; \
	  version="$$($(CONTRIB_VERSION))" && \
	  $(BIN)/python -m pip uninstall -y -q $$others && \
	  $(BIN)/python -m pip install -q --force-reinstall --no-deps "opencv-contrib-python==$$version"; \
	fi
	@owners="$$($(CV2_OWNERS))"; test "$$owners" = "opencv-contrib-python" || \
	  { echo "cv2 is owned by '$$owners'; expected opencv-contrib-python alone"; exit 1; }
	@$(BIN)/python -c "import cv2, mediapipe; print('cv2', cv2.__version__, 'from opencv-contrib-python; mediapipe ok')"

# The main job, on the generated sample dataset under DVC: MASA first (its headline numbers as soon as it is
# evaluated), then CASA, early fusion and VASOT, then one table of them all. `make demo-all` adds LA2DS and late
# fusion (heatmap transformers: more training time than the four others together) and the report stage, which
# writes reports/metrics.md and prints the table.
DVC  := PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc
DEMO := evaluate@sample-casa evaluate@sample-fusion_early evaluate@sample-vasot
demo: $(STAMP)
	$(DVC) repro evaluate@sample-masa
	@echo; echo "MASA on the sample (fractions; the full table follows the other methods):"
	@$(DVC) metrics show metrics/sample/masa.json; echo
	$(DVC) repro $(DEMO)
	@$(BIN)/pipeline -q report

demo-all: $(STAMP)
	$(DVC) repro

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

# Untracked outputs and caches only: metrics/, reports/ and losses/ are committed (git checkout restores them).
clean:
	rm -rf data models plots timings dvc_plots .cache
