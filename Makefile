# grok_lightning: `make help` lists the targets. The first target used creates .venv and installs
# the package (editable, with dev extras); a stamp makes later calls instant, and a changed
# pyproject.toml re-installs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Optional torch pin installed before the package, e.g. TORCH=torch==2.13.0 for a local CPU wheel.
TORCH ?=
# Extras installed with the package: `original` (jax + dm-haiku) draws the original weights for any
# seed or shape beyond the stored presets (e.g. the fully collapsed model); EXTRAS=dev skips it.
EXTRAS ?= dev,original
TASK ?= modadd
PRESET ?=
SWEEP ?= parity_phase
ARGS ?=
RUN ?=

.DEFAULT_GOAL := help
.PHONY: help setup train sweep ensemble report explore test test-full test-cluster bench lint clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  e.g. make train TASK=modadd PRESET=main ARGS=\"optim.weight_decay=0.5 logger=csv\""

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(TORCH),$(PY) -m pip install -q "$(TORCH)")
	@# setuptools' note on editable installs of root-level packages (callbacks/, configs/) is not actionable
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q -e '.[$(EXTRAS)]'
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install the package (done automatically by every target)

# A resume names its task in the run's config.yaml: the default TASK is not passed beside it (one
# given on the command line is, and must match the run's).
TRAIN_TASK = $(if $(and $(findstring resume=,$(ARGS)),$(filter file,$(origin TASK))),,task=$(TASK))
# make turns any failing recipe into its own exit code 2; the line names the command's own code
# (1 diverged, 2 bad input, 130 interrupted), which `$(PY) -m grok_lightning.train ...` returns as is.
train: $(STAMP) ## train one run: TASK=modadd|parity|fixed_embed [PRESET=name] [ARGS="key=value ..."]
	@$(PY) -m grok_lightning.train $(TRAIN_TASK) $(if $(PRESET),preset=$(PRESET)) $(ARGS); rc=$$?; \
	if [ $$rc -ne 0 ]; then echo "make: grok_lightning.train exited with $$rc (1 diverged, 2 bad input, 130 interrupted)" >&2; fi; \
	exit $$rc

sweep: $(STAMP) ## train a grid of models together, on every core: SWEEP=parity_phase|modadd_seeds|... [ARGS=...]
	$(PY) -m grok_lightning.sweep sweep=$(SWEEP) $(ARGS)

ensemble: $(STAMP) ## one start under perturbed numerics, the spread of its grokking step: TASK=modadd PRESET=main [ARGS="perturb=8 ..."]
	$(PY) -m grok_lightning.ensemble task=$(TASK) $(if $(PRESET),preset=$(PRESET)) $(ARGS)

report: $(STAMP) ## re-render every figure of a finished run: RUN=runs/<task>/<id>
	$(PY) -m grok_lightning.report $(RUN)

explore: $(STAMP) ## (re)build the offline interactive page of a run or sweep: RUN=runs/<task>/<id> or sweeps/<name>
	$(PY) -m grok_lightning.explorer $(RUN)

test: $(STAMP) ## the fast test suite (a few minutes on 2 cores)
	$(PY) -m pytest -q $(ARGS)

test-full: $(STAMP) ## every test, including the slow full-length training runs (not the cluster ones)
	$(PY) -m pytest -q -m "not cluster" $(ARGS)

# Needs slurm-wlm and munge (apt-get install -y slurm-wlm munge); the cluster stays up afterwards
# (scripts/slurm_cluster.sh stop). -s: the tests print their job ids and sacct lines.
test-cluster: $(STAMP) ## sbatch/srun, scontrol requeue and fabric run on a one-node SLURM cluster here
	scripts/slurm_cluster.sh
	$(PY) -m pytest -q -s -m cluster tests/test_cluster.py $(ARGS)

bench: $(STAMP) ## speed tables: Lightning vs plain loop, sweep throughput, torch.compile, grid floor [ARGS="--quick"]
	$(PY) -m benchmarks $(ARGS)

lint: $(STAMP) ## ruff over the code
	$(VENV)/bin/ruff check grok_lightning callbacks tests benchmarks scripts

clean: ## remove the venv, caches and runs
	rm -rf $(VENV) runs sweeps wandb build dist *.egg-info .pytest_cache .ruff_cache bench_results.json
	find . -name __pycache__ -prune -exec rm -rf {} +
