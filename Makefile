# seglab: `make train` and `make test` are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MLFLOW_PORT ?= 5000

.PHONY: train test lint format ui server optuna-dashboard bench clean upgrade-deps

LOCK := constraints.txt
# A worker per core (pytest-xdist), the longest work first: tests/scheduling.py says how.
PYTEST_PARALLEL := -n auto --dist loadscope --no-loadscope-reorder

# (Re)create the virtual environment when it is missing or older than pyproject.toml or the
# lock: the versions in constraints.txt are the ones the suite passed with.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -c $(LOCK)
	touch $(STAMP)

# The newest releases pyproject.toml allows, in a fresh .venv; the suite must pass on them before
# constraints.txt is rewritten. A red suite leaves the lock as it was (and `make test` then
# reinstalls the locked set: the cleared .venv has no stamp).
upgrade-deps:
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --upgrade -e '.[dev]'
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)
	$(BIN)/python scripts/write_constraints.py --output $(LOCK)
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python train.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The MLflow UI over the project's embedded store, on loopback only; prints each experiment's
# link in the model-training view (README "The model-training view").
MLFLOW_STORE ?= $(CURDIR)/mlruns
ui: $(STAMP)
	$(BIN)/python -m seglab.cli.ui --store $(MLFLOW_STORE) --host 127.0.0.1 --port $(MLFLOW_PORT)

# A team's tracking server, locked by MLflow's basic-auth app (README "A team server"):
# MLFLOW_AUTH_ADMIN_PASSWORD=... make server [SERVER_HOST=10.0.0.5] [SERVER_PORT=5001]
SERVER_HOST ?= 127.0.0.1
SERVER_PORT ?= 5001
SERVER_ROOT ?= $(CURDIR)/mlserver
server: $(STAMP)
	$(BIN)/python -m seglab.cli.server --root $(SERVER_ROOT) --host $(SERVER_HOST) \
		--port $(SERVER_PORT) $(SERVER_ARGS)

# An Optuna study's trials, their curves and parameter importances, on loopback only. The default
# is the default study's storage; another: make optuna-dashboard OPTUNA_STORAGE=sqlite:///...
OPTUNA_STORAGE ?= sqlite:///$(CURDIR)/runs/train/optuna/seglab/optuna.db
OPTUNA_PORT ?= 8080
optuna-dashboard: $(STAMP)
	$(BIN)/optuna-dashboard $(OPTUNA_STORAGE) --host 127.0.0.1 --port $(OPTUNA_PORT)

# Benchmarks (CPU, a few minutes): bench/results.json + a Markdown table for the README.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
