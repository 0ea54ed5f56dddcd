# The two commands a new user runs: `make demo` and `make test`. Both create .venv and install first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint bench screenshots venv clean

$(INSTALLED): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Cleave needs Python 3.11 or newer (set PYTHON=python3.11)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(INSTALLED)

venv: $(INSTALLED)

var/secret_key:
	@mkdir -p var
	@umask 077 && $(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))' > $@

demo: $(INSTALLED) var/secret_key
	SECRET_KEY_FILE=var/secret_key $(BIN)/python manage.py demo $(DEMO_ARGS)

test: $(INSTALLED)
	$(BIN)/python -m pytest

# The console's screenshots in docs/screenshots/, taken by the browser tests.
screenshots: $(INSTALLED)
	CLEAVE_SCREENSHOTS=docs $(BIN)/python -m pytest tests/e2e

lint: $(INSTALLED)
	$(BIN)/ruff check .
	DEBUG=1 $(BIN)/mypy .

# Every script under bench/ but the shared helpers; all run, and the target fails if any did.
bench: $(INSTALLED)
	@failed=""; for script in bench/[a-z]*.py; do \
		case $$script in bench/common.py|bench/django_env.py) continue;; esac; \
		echo "== $$script"; $(BIN)/python $$script --json || failed="$$failed $$script"; \
	done; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

clean:
	rm -rf var/test var/celery var/static var/bench
