# augsweep — the menu. `make help` lists the targets.
PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
AUGSWEEP := $(PY) -m augsweep
EXP      ?= experiments/default.yaml
MLRUNS   ?= mlruns
PORT     ?= 5000
WORKERS  ?= auto
MEMBERS  ?= auto
TRIALS   ?=
REPEATS  ?=
PYTEST_ARGS ?=
STORAGE  ?=
CLUSTER  ?= .cluster
PG_PORT  ?= 5433
MLFLOW_PORT ?= 5001
DASHBOARD_PORT ?= 8080
export TF_CPP_MIN_LOG_LEVEL ?= 2

.DEFAULT_GOAL := help
.PHONY: help install data pretrain sweep ablate report ui dashboard cluster-up cluster-down test test-fast bench bench-group bench-gpu docs docs-serve clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -e 's/$$(PORT)/$(PORT)/g' -e 's/$$(DASHBOARD_PORT)/$(DASHBOARD_PORT)/g' \
		| awk 'BEGIN {FS = ":.*## "}; {printf "  make %-13s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,cluster]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install the project (once; again when pyproject.toml changes)

FASHION_SYSTEM := /usr/share/datasets/fashion-mnist
FASHION_LOCAL  := data/fashion-mnist

data:  ## Fashion-MNIST IDX files into data/fashion-mnist (Debian's dataset-fashion-mnist, no root; or the system copy)
	@if [ -f $(FASHION_LOCAL)/train-images-idx3-ubyte.gz ]; then echo "data: $(FASHION_LOCAL) is there"; \
	elif [ -f $(FASHION_SYSTEM)/train-images-idx3-ubyte.gz ]; then echo "data: using the system copy in $(FASHION_SYSTEM)"; \
	else set -e; rm -rf data/.deb && mkdir -p data/.deb $(FASHION_LOCAL) && cd data/.deb \
	  && apt-get download dataset-fashion-mnist && dpkg -x dataset-fashion-mnist_*.deb pkg && cd ../.. \
	  && cp data/.deb/pkg$(FASHION_SYSTEM)/*-ubyte.gz $(FASHION_LOCAL)/ && rm -rf data/.deb \
	  && echo "data: Fashion-MNIST in $(FASHION_LOCAL)"; fi

PRETRAINED ?= data/fashion-convnet-0-4.weights.h5

pretrain: install data  ## train the convnet of Kaggle's computer-vision course on Fashion-MNIST classes 0-4, save its conv blocks to PRETRAINED
	$(AUGSWEEP) pretrain --out $(PRETRAINED)

sweep: install  ## run (or resume, to TRIALS in total) the experiment EXP into MLRUNS on every core (WORKERS=auto|N; MEMBERS=auto|N trainings per program, 1: one at a time), then its report
	AUGSWEEP_UI_URL=http://127.0.0.1:$(PORT) $(AUGSWEEP) sweep $(EXP) --mlruns $(MLRUNS) --workers $(WORKERS) $(if $(filter-out 1,$(MEMBERS)),--members $(MEMBERS)) $(if $(TRIALS),--trials $(TRIALS)) --report

ablate: install  ## paired-seed ablation of EXP around its best trial or ablation.base (REPEATS=R seeds; MEMBERS=auto|N trainings per program, 1: one at a time), then the report
	AUGSWEEP_UI_URL=http://127.0.0.1:$(PORT) $(AUGSWEEP) ablate $(EXP) --mlruns $(MLRUNS) $(if $(REPEATS),--repeats $(REPEATS)) $(if $(filter-out 1,$(MEMBERS)),--members $(MEMBERS)) --report

report: install  ## write reports/<study>/ from the stores (never retrains)
	AUGSWEEP_UI_URL=http://127.0.0.1:$(PORT) $(AUGSWEEP) report $(EXP) --mlruns $(MLRUNS)

ui: install  ## MLflow UI on http://127.0.0.1:$(PORT) over MLRUNS; prints (and opens) the link to each study's trials
	$(AUGSWEEP) ui --mlruns $(MLRUNS) --port $(PORT)

dashboard: install  ## optuna-dashboard (read-only) on http://127.0.0.1:$(DASHBOARD_PORT) over MLRUNS or STORAGE=URL
	$(AUGSWEEP) dashboard $(if $(STORAGE),$(STORAGE),sqlite:///$(abspath $(MLRUNS))/optuna.db) --port $(DASHBOARD_PORT)

cluster-up: install  ## PostgreSQL + MLflow server + optuna-dashboard on 127.0.0.1 (data in CLUSTER=.cluster/); prints the worker command
	$(AUGSWEEP) cluster up --dir $(CLUSTER) --pg-port $(PG_PORT) --mlflow-port $(MLFLOW_PORT) --dashboard-port $(DASHBOARD_PORT) --experiment $(EXP)

cluster-down:  ## stop what cluster-up started (the data stays in CLUSTER/)
	$(AUGSWEEP) cluster down --dir $(CLUSTER)

test: install  ## the whole test suite (fast tests and the slow end-to-end runs; fetches Fashion-MNIST when it can)
	@$(MAKE) --no-print-directory data || echo "note: Fashion-MNIST could not be fetched; its tests will be skipped"
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-fast: install  ## the tests not marked slow (the long end-to-end runs are left to make test and CI)
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow" $(PYTEST_ARGS)

BENCH ?= overhead throughput bookkeeping memory startup pruning streaming determinism group

bench: install  ## benchmarks (CPU, ~3 min each): ratios measured side by side; BENCH=... picks (also: storage); see bench/RESULTS.md
	@for b in $(BENCH); do echo "== bench/$$b.py"; $(PY) bench/$$b.py || exit 1; done

bench-group: install  ## CPU-s per training of the default network: alone vs 4, 8, 16 trainings as one program (bench/group.py)
	$(PY) bench/group.py

bench-gpu: install  ## on a GPU, under JAX: trainings as one program vs alone (bench/group.py); then images/s of the course's convnet (bench/gpu.py)
	KERAS_BACKEND=jax $(PY) bench/group.py --sizes 4,16 --epochs 20 --sides alone,branches,grouped
	$(PY) bench/gpu.py

docs: install  ## build the documentation site into site/ (mkdocs build --strict: a broken link or page fails)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

docs-serve: install  ## serve the documentation on http://127.0.0.1:8000, rebuilt as you edit
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve -a 127.0.0.1:8000

clean:  ## remove stores and reports (keeps .venv and data/)
	rm -rf $(MLRUNS) reports
