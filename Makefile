# Two commands do all set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The fastest backend for the demo on a 2-core CPU (measured: docs/benchmarks.md).
DEMO_BACKEND ?= tensorflow
DEMO_ARGS ?= --out demo-out

.PHONY: demo test lint install clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# Exactly this torch: a CPU build. Any other version pulls a CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[jax,torch,tensorflow,dev]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	KERAS_BACKEND=$${KERAS_BACKEND:-$(DEMO_BACKEND)} $(BIN)/mtl demo $(DEMO_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: $(BIN)/.installed lint
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q --durations=10 tests src/keras_mtl src/keras_mtl_cli
	KERAS_BACKEND=torch $(BIN)/python -m pytest -q --durations=10 tests
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -q --durations=10 -m model tests

clean:
	rm -rf $(VENV) demo-out
