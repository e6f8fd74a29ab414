# fraudapp — `make run` serves the demo on http://127.0.0.1:8000, `make test` runs the whole suite
# with branch coverage, `make test-fast` the tests without a browser or a `slow` mark.
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app fraudapp
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
# More pytest arguments, e.g. `make test-fast PYTEST_ARGS="-x -k config"`; `COVERAGE=` turns it off.
PYTEST_ARGS ?=
COVERAGE ?= --cov=fraudapp --cov-branch --cov-report=term

.PHONY: run install test test-fast test-postgres lint format i18n bench vendor clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The web server and the trainer (Procfile), under honcho; gunicorn.conf.py reads the bind address
# and the worker count from FRAUDAPP_BIND / FRAUDAPP_WORKERS. Ctrl-C (or SIGTERM) stops both.
run: export FRAUDAPP_BIND = $(HOST):$(PORT)
run: export FRAUDAPP_WORKERS = $(WORKERS)
run: export PYTHONUNBUFFERED = 1
run: install
	$(FLASK) db upgrade
	$(FLASK) init-demo
	$(VENV)/bin/honcho start

test: install
	$(PY) -m pytest $(COVERAGE) $(PYTEST_ARGS)

# While developing: no browser tests, nothing marked slow (they still run in `make test`).
test-fast: install
	$(PY) -m pytest -m "not browser and not slow" $(PYTEST_ARGS)

test-postgres: install
	FRAUDAPP_DATABASE_URL=$${FRAUDAPP_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test} \
	$(PY) -m pytest $(COVERAGE) $(PYTEST_ARGS)

# ruff, then the import layers of pyproject.toml's [tool.importlinter] contracts.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Translations: extract the messages of fraudapp/ and templates/ (babel.cfg) into messages.pot,
# merge them into each language's .po (new ones untranslated, changed ones fuzzy), compile the
# .mo files the app reads. Both .po and .mo are committed, so a clean clone needs no step.
# tests/test_i18n.py fails while a message has no Portuguese translation.
TRANSLATIONS := fraudapp/translations
PYBABEL := $(VENV)/bin/pybabel
i18n: install
	$(PYBABEL) -q extract -F babel.cfg -k _l -k lazy_gettext -k Message --no-location --sort-output \
	  --project fraudapp --copyright-holder "fraudapp contributors" -o $(TRANSLATIONS)/messages.pot .
	test -f $(TRANSLATIONS)/pt_BR/LC_MESSAGES/messages.po || \
	  $(PYBABEL) -q init -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) -l pt_BR
	$(PYBABEL) -q update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) --no-wrap
	$(PYBABEL) compile --statistics -d $(TRANSLATIONS)

# mlflow (the `bench` extra) gets a venv of its own: it pins an older gunicorn and brings pyarrow,
# which changes pandas' string columns; the app's .venv stays as the app ships.
BENCH_VENV ?= .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[bench]'
	touch $@

bench: install $(BENCH_VENV)/.installed
	@command -v wrk >/dev/null || { echo "make bench needs wrk (HTTP load generator): apt-get install wrk"; exit 1; }
	$(PY) bench/serve.py --mlflow-venv $(BENCH_VENV)
	$(PY) bench/predict.py
	$(PY) bench/quality.py
	$(PY) bench/distribution.py
	$(PY) bench/faults.py
	$(PY) bench/upload.py

# Refresh the vendored front-end files from the npm registry (they are committed under static/).
vendor:
	cd $$(mktemp -d) && npm pack --silent bootstrap@5.3.9 && tar xzf bootstrap-5.3.9.tgz && \
	cp package/dist/css/bootstrap.min.css package/dist/js/bootstrap.bundle.min.js package/LICENSE \
	   $(CURDIR)/static/vendor/bootstrap/
	cd $$(mktemp -d) && npm pack --silent chart.js@4.6.1 && tar xzf chart.js-4.6.1.tgz && \
	cp package/dist/chart.umd.min.js package/LICENSE.md $(CURDIR)/static/vendor/chartjs/
	cd $$(mktemp -d) && npm pack --silent swagger-ui-dist@5.35.0 && tar xzf swagger-ui-dist-5.35.0.tgz && \
	cd package && cp swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE \
	   NOTICE $(CURDIR)/static/vendor/swagger-ui/

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .ruff_cache .coverage
