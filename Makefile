# kubesage: every target installs what it needs, so a fresh machine needs only Python 3.11 and make.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
DEMO_DIR := build/demo
# pytest workers (pytest-xdist): one per core of the 2-core machine the suite's times are measured on.
# Three were measured on a clean clone (2026-12-06): pytest 12:06 against 12:08 with two, the tests' own
# times summed 2,090 s against 1,396 s: the cores are already busy (Docker's containers run outside
# pytest's processes, so `time` undercounts them), and a third worker only shares them.
TEST_WORKERS ?= 2
# PYTHONDONTWRITEBYTECODE emptied: pytest then keeps its assertion-rewritten test modules in
# __pycache__, and each worker's collection of the next run takes 10 s of CPU instead of 16 s.
# --no-loadscope-reorder: xdist hands out the work units in the order tests/conftest.py collects them,
# longest first by the last run's times (tests/schedule.py), not most tests first.
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup \
	--no-loadscope-reorder --durations=20

.PHONY: setup demo test test-fast lint docs ui image bench clean

# --compile-bytecode: every task process imports MLflow, pandas and KFP; without .pyc files (and with
# PYTHONDONTWRITEBYTECODE set, as on these machines) each one recompiles their sources (~15 s a run).
$(VENV)/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	uv sync --quiet --frozen --compile-bytecode --extra dev
	@touch $@

setup: $(VENV)/.synced

# The demo needs no dev tools: it syncs the default install only (--inexact keeps dev tools a
# `make setup` installed).
$(VENV)/.demo-synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@echo "installing kubesage (uv sync, quiet)..."
	@uv sync --quiet --frozen --compile-bytecode --inexact
	@touch $@

# At most 40 lines: one per step start and end, the summary and the next steps, then the seed's
# serving path: the registered model served, the local API in front of the Lambda handler, one raw
# record sent with the API key, the answer printed, everything stopped (tests/integration/test_demo_output.py).
demo: $(VENV)/.demo-synced
	@$(BIN)/kubesage data generate --rows 5000 --seed 7 --output $(DEMO_DIR)/churn.csv
	@$(BIN)/kubesage run customer_churn --param input_data=$(DEMO_DIR)/churn.csv
	@$(BIN)/python -m kubesage.local_api.demo --data $(DEMO_DIR)/churn.csv

# Every suite. KUBESAGE_TESTS_STRICT=1 turns a missing engine, image or browser into failures, never
# skips (tests/needs.py); --durations=20 shows where the time went, every run. Tests sharing a run or a
# module's fixtures stay on one worker (tests/conftest.py, pytest_collection_modifyitems).
test: setup lint image
	bash scripts/install-browser.sh
	bash scripts/install-postgres.sh
	KUBESAGE_TESTS_STRICT=1 $(PYTEST)

# No Docker, no browser: those suites are deselected, so this passes on a machine with neither.
test-fast: setup
	$(PYTEST) -m "not container and not browser"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	bash scripts/typecheck.sh  # mypy over the package as installed, where runners/ resolves
	bash scripts/lint-imports.sh
	$(BIN)/python scripts/lint_policies.py runners/sagemaker/iam  # the one IAM linter; lambda/lint.sh runs it on the template
	bash lambda/lint.sh
	bash scripts/build-docs.sh  # --strict: a broken link, page or API reference fails the lint

# The documentation site (mkdocs-material + mkdocstrings), into build/site.
docs: setup
	bash scripts/build-docs.sh

ui: setup
	$(BIN)/kubesage ui

# The container images: a Docker engine, a debootstrapped base and a host-built wheelhouse shared by
# every image (containers/common/), then each image's own build. Each step skips or hits the cache
# when nothing changed.
image: setup
	bash containers/common/engine.sh
	bash containers/common/base-image.sh
	bash containers/common/wheelhouse.sh
	bash containers/xgboost-daal4py/build.sh
	bash lambda/build-image.sh

bench: setup
	@command -v wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf build .pytest_cache .mypy_cache
