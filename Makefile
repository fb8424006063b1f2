# Two commands on a fresh machine: `make dev` runs the service, `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# Dev data (the embedded servers' clusters) lives in .chirp/; `clean` leaves it alone.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: dev test lint venv web browser clean bench bench-quick bench-home bench-fanout \
	bench-fanout-scaling bench-live bench-media backends \
	backends-stop

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "python3.11 or python3 must be on PATH"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python >= 3.11 is required (found $(PYTHON))"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The live page's browser client and the Node WebSocket client tests (graphql-ws from npm).
WEB_STAMP := web/node_modules/.installed
web: $(WEB_STAMP)

$(WEB_STAMP): web/package.json web/package-lock.json
	@command -v npm >/dev/null || { echo "Node.js and npm are required for the live page and its tests"; exit 1; }
	npm ci --prefix web --no-audit --no-fund
	touch $(WEB_STAMP)

# The live page needs web/; without npm the API still runs and /live says what is missing.
dev: venv $(if $(shell command -v npm),web,)
	$(PY) -m runtime.dev

# Headless Chromium for the live-page test: Debian's package, installed when we are root.
browser:
	@command -v chromium >/dev/null || { test "$$(id -u)" = 0 && \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  { echo "the live-page test needs Chromium: apt-get install chromium"; exit 1; }

# Kafka 9092, Cassandra 9042 and S3 (S3Proxy) 9000 as background daemons from Maven Central
# jars (needs java and mvn); idempotent, and they keep running: `make backends-stop` ends them.
backends: venv
	@command -v java >/dev/null && command -v mvn >/dev/null || \
	  { echo "Kafka, Cassandra and S3Proxy need java 17 and mvn (apt-get install openjdk-17-jdk-headless maven)"; exit 1; }
	$(PY) -m deploy.local.backends start

backends-stop: venv
	$(PY) -m deploy.local.backends stop

# Kafka and Cassandra are part of what the suite covers: without java it stops here. Every
# test that runs on the default backends runs again with the event bus on Kafka and the
# tweet store on Cassandra (the contract suites already cover both adapters).
SCALE_TESTS := tests/api tests/live tests/test_consistency.py tests/test_faults.py \
	tests/test_fanout_chunks.py
test: venv web browser backends
	$(PY) -m pytest
	@echo "== the same tests on Kafka and Cassandra =="
	CHIRP_TEST_STACK=kafka-cassandra $(PY) -m pytest $(SCALE_TESTS)

# The benchmark (bench/run.py, docs/capacity.md): a 110,000-user heavy-tailed graph,
# open-loop homeTimeline load, the floors, pure pull, fan-out, post-to-visible, celebrity
# reads, memory; ~20 min. bench-quick: a 12,000-user graph and short scenarios, < 3 min.
# Both write bench/results/latest.{json,md,png}. Needs the bench extra (numpy, matplotlib).
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m bench.run
	$(PY) -m bench.media --s3

bench-quick: $(BENCH_STAMP)
	$(PY) -m bench.run --quick

# Rough single-process homeTimeline throughput (uses wrk if installed: apt-get install wrk).
bench-home: venv
	$(PY) -m bench.home_rps

# Media: processing ms, CPU and peak memory per 1 MP / 12 MP JPEG (Pillow, the chosen
# library, against its bare decode-and-resize and against pyvips); upload-to-READY p99 of
# 20 concurrent uploads on the file store and the local S3 server (docs/media.md).
bench-media: $(BENCH_STAMP)
	$(PY) -m bench.media --s3

# Fan-out deliveries/s of one worker process for a 100k-follower author.
bench-fanout: venv
	$(PY) -m bench.fanout_rate

# Fan-out deliveries/s on Redis Streams vs Kafka, 1 vs 2 worker processes (starts Kafka).
bench-fanout-scaling: venv
	$(PY) -m bench.fanout_scaling

# Live delivery latency and memory with 2,000 WebSocket subscribers on one API process.
bench-live: venv
	$(PY) -m bench.live_subscribers

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
