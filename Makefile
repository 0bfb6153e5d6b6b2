# Single entry point. `make demo` and `make test` set everything up first (idempotent).
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup demo test test-fast lint report clean

setup: $(VENV)/.installed fashion-mnist

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The embedded dataset: Debian's package when we can install it, else torchvision downloads it.
fashion-mnist:
	@if [ ! -f $(FASHION_MNIST) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	  else \
	    echo "note: Debian's dataset-fashion-mnist is not installed; Fashion-MNIST will be downloaded"; \
	  fi; \
	fi

demo: setup
	snakemake --workflow-profile workflow/profiles/default

report: setup
	snakemake --workflow-profile workflow/profiles/default --report results/report.html

test: setup
	python -m pytest

test-fast: setup
	python -m pytest -m "not slow"

lint: setup
	ruff check . && ruff format --check . && snakemake --lint

clean:
	rm -rf results/data results/splits results/checkpoints results/eval results/tables \
	  results/figures results/logs results/report.html .snakemake
