# Keerpunt: two commands. `make run` starts the app with demo data; `make test` runs everything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export KEERPUNT_DATABASE_URL ?= sqlite+aiosqlite:///var/keerpunt.db

.PHONY: run test install lint typecheck pytest migration clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)
	@# Editable install maps the code folders into keerpunt.*; re-run cheaply for new files.
	@$(BIN)/pip install --quiet --no-deps -e . >/dev/null

run: install
	mkdir -p var
	KEERPUNT_DEMO=1 $(BIN)/keerpunt db upgrade
	KEERPUNT_DEMO=1 $(BIN)/keerpunt demo load
	@echo "Keerpunt runs at http://127.0.0.1:8000 (demo mode: log in via 'Demo: kies een persoon')."
	KEERPUNT_DEMO=1 $(BIN)/keerpunt serve --host 127.0.0.1 --port 8000

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: install
	$(BIN)/ruff check platform consent triage settlement tests bench
	$(BIN)/ruff format --check platform consent triage settlement tests bench

typecheck: install
	@mkdir -p var/mypy/keerpunt
	@for d in platform consent triage settlement; do ln -sfn ../../../$$d var/mypy/keerpunt/$$d; done
	$(BIN)/mypy

pytest: install chromium
	$(BIN)/python -m pytest

test: lint typecheck pytest

# Regenerate the initial migration from the models (before the first release only).
migration: install
	rm -f var/migration.db
	$(BIN)/python -m keerpunt.platform.migrate --autogenerate var/migration.db

clean:
	rm -rf $(VENV) var build *.egg-info
