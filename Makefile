# The two commands: `make run` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test setup install assets migrate seed lint format worker clean bench lock lock-upgrade

run: setup migrate seed
	$(VENV)/bin/flask --app app run --host $(HOST) --port $(PORT)

# Two pytest-xdist workers (this box has 2 cores): each gets its own
# database and Redis database (tests/conftest.py). PYTEST_ARGS= runs serially.
PYTEST_ARGS ?= -n 2
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

setup: $(VENV)/.installed static/vendor/.built

# The exact versions CI tested, checked by hash (requirements.lock), then
# the app itself; `pip check` fails when pyproject.toml asks for something
# the lock lacks (run `make lock`).
$(VENV)/.installed: pyproject.toml requirements.lock
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q --require-hashes -r requirements.lock
	$(PIP) install -q --no-deps -e .
	$(PIP) check
	touch $@

# Refresh requirements.lock from pyproject.toml: `lock` keeps the pinned
# versions and adds what is new; `lock-upgrade` moves everything to the
# newest versions allowed.
PIP_COMPILE = $(VENV)/bin/pip-compile -q --extra dev --generate-hashes --strip-extras \
	--allow-unsafe --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
lock:
	test -x $(VENV)/bin/pip-compile || $(PIP) install -q pip-tools
	$(PIP_COMPILE)

lock-upgrade:
	test -x $(VENV)/bin/pip-compile || $(PIP) install -q pip-tools
	$(PIP_COMPILE) --upgrade

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Icons named by the app (app/web/icons.py, the node types) go into the sprite.
static/vendor/.built: node_modules/.package-lock.json $(VENV)/.installed scripts/build_assets.py \
		app/web/icons.py $(wildcard app/automation/nodes/*.py)
	$(PY) scripts/build_assets.py
	touch $@

assets: node_modules/.package-lock.json
	$(PY) scripts/build_assets.py

migrate: setup
	$(VENV)/bin/automation db upgrade

seed: setup
	$(VENV)/bin/automation seed-demo

worker: setup
	$(PY) worker.py

# Every benchmark in turn (each prints JSON lines last). PostgreSQL and
# Redis from DATABASE_URL / REDIS_URL, else the local servers; the engine
# benchmark also runs once on the embedded SQLite default; delivery runs its
# three variants (plain, 100,000 suppressions, and those with DKIM).
BENCH_DB ?= postgresql://postgres@127.0.0.1:5432/postgres
BENCH_REDIS ?= redis://127.0.0.1:6379/13
bench: setup
	for b in engine delivery analytics fanout waits latency web ingest tracking trickle contact_import; do \
	  args=; if [ $$b = delivery ]; then args=--variants; fi; \
	  DATABASE_URL=$${DATABASE_URL:-$(BENCH_DB)} REDIS_URL=$${REDIS_URL:-$(BENCH_REDIS)} \
	    $(PY) benchmarks/$$b.py $$args || exit 1; \
	done
	env -u DATABASE_URL -u REDIS_URL $(PY) benchmarks/engine.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules static/vendor instance
