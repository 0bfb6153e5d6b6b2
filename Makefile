# Single entry point. `make demo` and `make test` set everything up first (idempotent).
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup demo test test-fast lint report clean schema dvc cost docs slurm-profile slurm-packages lock

setup: $(VENV)/.installed fashion-mnist slurm-profile

# Installs the versions the tests passed with (constraints.txt); `make lock` renews them.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# The newest versions pyproject.toml allows, in a fresh venv, frozen into constraints.txt (and
# environment.yml's conda pins); then `make test` (which reinstalls .venv from the new file)
# and commit both files.
LOCK_VENV := .venv-lock
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/pip install --quiet -e '.[dev]'
	$(LOCK_VENV)/bin/pip freeze --exclude-editable | $(PYTHON) scripts/lock_versions.py
	rm -rf $(LOCK_VENV)

# The embedded dataset: Debian's package when we can install it, else torchvision downloads it.
fashion-mnist:
	@if [ ! -f $(FASHION_MNIST) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	  else \
	    echo "note: Debian's dataset-fashion-mnist is not installed; Fashion-MNIST will be downloaded"; \
	  fi; \
	fi

# `snakemake --profile slurm` looks for `slurm` in the working directory first, then in
# ~/.config/snakemake: the top-level link `slurm` makes it this checkout's profile, so nothing
# is linked into ~/.config (a link there would make every checkout use the last one set up).
# Older versions of this Makefile made that link: say so when it is there.
slurm-profile:
	@link="$${XDG_CONFIG_HOME:-$$HOME/.config}/snakemake/slurm"; \
	if [ -L "$$link" ]; then case "$$(readlink "$$link")" in */workflow/profiles/slurm) \
	  echo "note: $$link (-> $$(readlink "$$link")) is not needed: \`--profile slurm\` in a checkout uses its own profile; outside one it would use that checkout's (rm it)";; esac; fi

# The tests start a one-node SLURM cluster (tests/slurm_cluster.py): as root, install Debian's
# slurm-wlm and munge when missing. Never on a machine that already has a SLURM client (a
# cluster's login node): there the cluster tests skip.
SLURM_COMMANDS := sbatch squeue slurmctld slurmd munged mungekey
slurm-packages:
	@missing=""; for c in $(SLURM_COMMANDS); do \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -z "$$missing" ]; then :; \
	elif command -v sbatch >/dev/null; then \
	  echo "note: a SLURM client is installed but not$$missing; the SLURM cluster tests will skip"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; \
	else \
	  echo "note: slurm-wlm and munge are not installed (needs root and apt-get); the SLURM cluster tests will skip"; \
	fi

demo: setup
	snakemake

report: setup
	snakemake --report results/report.html

test: setup slurm-packages
	python -m pytest

test-fast: setup
	python -m pytest -m "not slow"

# The config schema is generated from the settings dataclasses (sdclr/settings.py).
schema: setup
	python -m sdclr.pipeline.schema

# dvc.yaml is generated from the stage table (sdclr/pipeline/dag.py): `make dvc` for
# config/config.yaml (the repository's dvc.yaml), `make dvc CONFIG=config/paper/cifar10_lt.yaml`
# for experiments/cifar10_lt/dvc.yaml (`dvc repro experiments/cifar10_lt/dvc.yaml`).
CONFIG ?= config/config.yaml
dvc: setup
	python -m sdclr.pipeline.dvc --config $(CONFIG)

# Jobs per rule and projected GPU-hours of a config before submitting it (sdclr/pipeline/cost.py):
# `make cost CONFIG=config/paper/all.yaml`, at the default speeds of an H100-class GPU, or
# `make cost CONFIG=... BENCHMARK=bench.json` at the speeds scripts/bench_pretrain.py --json measured.
BENCHMARK ?=
cost: setup
	python -m sdclr.pipeline.cost --config $(CONFIG) $(if $(BENCHMARK),--benchmark $(BENCHMARK))

# The documentation site (mkdocs.yml, docs/) into site/, warnings as errors; the configuration
# reference is rendered from workflow/schemas/config.schema.yaml as it builds. `mkdocs serve`
# serves it while editing. NO_MKDOCS_2_WARNING: mkdocs-material's notice about its successor.
docs: setup
	NO_MKDOCS_2_WARNING=1 mkdocs build --strict

lint: setup
	ruff check . && ruff format --check . && snakefmt --check Snakefile workflow/rules \
	  && snakemake --lint

clean:
	rm -rf results/data results/splits results/checkpoints results/eval results/analysis \
	  results/tables results/figures results/logs results/report.html .snakemake
