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

# The one-engine table: serve, serve --replicas 1, cluster, dynalite, moto; Get/Put/Query at 64
# connections, 3 interleaved rounds, medians (~12 min): make bench-table
.PHONY: bench-table bench-profile bench-gsi
bench-table: $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) bench/run.py --servers triplica,triplica-r1,triplica-cluster,dynalite,moto \
		--workloads get,put,query --concurrency 64 --seconds 10 --repeat 3

# Secondary indexes: puts with 0 / 1 LSI / 1 / 5 GSIs, propagation lag, GSI vs table Query,
# backfill of a GSI over 100k items while puts run; triplica, dynalite, moto (~12 min)
bench-gsi: $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) bench/gsi.py --servers triplica,dynalite,moto --seconds 10 --backfill-items 100000

# py-spy profiles of serve (3 and 1 replicas) and of the cluster under Put and Get (~5 min)
bench-profile: $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]' py-spy
	$(PY) bench/profile.py --servers triplica,triplica-r1 --workloads put,get
	$(PY) bench/profile.py --servers triplica-cluster --workloads put,get --rate 25 --seconds 20 \
		--out profile-cluster.md

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
