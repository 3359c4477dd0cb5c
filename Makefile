PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: serve test bench clean fuzz

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/triplica serve --host 127.0.0.1 --port 8000 --data-dir ./triplica-data

test: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -n 2 tests

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build src/*.egg-info

# Deterministic simulator sweep of the replication core: make sim SEEDS=100000 [START=0] [JOBS=2]
.PHONY: sim
sim: $(STAMP)
	$(PY) -m triplica.sim --seeds $(or $(SEEDS),1000) --start $(or $(START),0) --jobs $(or $(JOBS),2)

# Power-off chaos against a local 3-node cluster: make chaos [SECONDS=300] [SEED=n]
.PHONY: chaos
chaos: $(STAMP)
	$(PY) -m triplica.ops.chaos --seconds $(or $(SECONDS),300) $(if $(SEED),--seed $(SEED),)

# Fuzz a real server with random requests from botocore's model, damaged valid
# requests and raw bytes: make fuzz [MINUTES=60] [SEED=n]
fuzz: $(STAMP)
	$(PY) -m tests.fuzz --minutes $(or $(MINUTES),60) $(if $(SEED),--seed $(SEED),)
