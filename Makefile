# Two commands on a fresh machine: `make dev` runs the service, `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# Dev data (the embedded servers' clusters) lives in .chirp/; `clean` leaves it alone.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: dev test lint venv clean bench-home bench-fanout

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "python3.11 or python3 must be on PATH"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python >= 3.11 is required (found $(PYTHON))"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: venv
	$(PY) -m runtime.dev

test: venv
	$(PY) -m pytest

# Rough single-process homeTimeline throughput (uses wrk if installed: apt-get install wrk).
bench-home: venv
	$(PY) -m bench.home_rps

# Fan-out deliveries/s of one worker process for a 100k-follower author.
bench-fanout: venv
	$(PY) -m bench.fanout_rate

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
