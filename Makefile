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

# Every test on JAX; the `model` tests (what differs per backend) on PyTorch
# and TensorFlow, beside the JAX pass (tests/run_backends.sh).
test: $(BIN)/.installed lint
	bash tests/run_backends.sh $(BIN)

clean:
	rm -rf $(VENV) demo-out
