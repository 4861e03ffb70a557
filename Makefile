# meterdesk — the two commands a person needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MYSQL_URL ?= mysql://root@127.0.0.1:3306/test
REDIS_URL ?= redis://127.0.0.1:6379/15
export MD_STATE_DIR ?= $(CURDIR)/var

.PHONY: run test test-at test-dates test-sqlite test-mysql lint assets translations messages bench clean serve

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,mysql,redis]'
	touch $@

app/static/vendor/htmx.min.js app/static/vendor/echarts.min.js &: packaging/assets/package.json packaging/assets/package-lock.json packaging/assets/build.sh
	bash packaging/assets/build.sh

assets: app/static/vendor/htmx.min.js app/static/vendor/echarts.min.js

translations: $(STAMP)
	$(VENV)/bin/pybabel compile -d app/translations

# Re-extract the message catalogue and merge it into each language's .po (run by hand after
# changing strings, then translate every new or fuzzy entry; tests/test_i18n.py checks).
# The Chinese catalogue lives in zh_Hans_CN: Babel expands zh_CN to zh_Hans_CN, and
# Flask-Babel looks the catalogue up under that name.
messages: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k tr --ignore-dirs='.* __pycache__ node_modules' \
		--project=meterdesk --version=0.1.0 --sort-by-file -o app/translations/messages.pot .
	$(VENV)/bin/pybabel update -i app/translations/messages.pot -d app/translations

run: $(STAMP) assets translations
	$(VENV)/bin/meterdesk db upgrade
	$(VENV)/bin/meterdesk demo load
	@echo "meterdesk console: http://127.0.0.1:8000  (simulated gateways and the collector run alongside)"
	@trap 'kill 0' EXIT INT TERM; \
	  $(VENV)/bin/meterdesk simulate > $(MD_STATE_DIR)/simulator.log 2>&1 & \
	  sleep 1; \
	  $(VENV)/bin/huey_consumer workers.huey --workers 2 --worker-type thread > $(MD_STATE_DIR)/worker.log 2>&1 & \
	  $(VENV)/bin/gunicorn -c packaging/gunicorn.conf.py 'app:create_app()'

test: $(STAMP) assets translations
	$(PY) -m pytest -q

# The suite with every process's wall clock moved to WHEN (ISO 8601 with offset) and the OS
# time zone TZ, e.g. make test-at WHEN=2027-01-01T00:30:00+08:00 TZ=UTC
WHEN ?= 2027-01-01T00:30:00+08:00
TZ ?= UTC
test-at: $(STAMP) assets translations
	MD_TEST_NOW=$(WHEN) TZ=$(TZ) PYTHONPATH=$(CURDIR)/tests/travel $(PY) -m pytest -q

# The suite at the instants where local and UTC days, months and years differ, a leap day,
# under both OS time zones.
TEST_DATES := 2027-01-01T00:30:00+08:00 2027-03-31T23:50:00+08:00 2028-02-29T12:00:00+08:00
test-dates: $(STAMP) assets translations
	@set -e; for when in $(TEST_DATES); do for tz in UTC Asia/Shanghai; do \
	  echo "== the suite at $$when with TZ=$$tz"; \
	  MD_TEST_NOW=$$when TZ=$$tz PYTHONPATH=$(CURDIR)/tests/travel $(PY) -m pytest -q; \
	done; done

test-mysql: $(STAMP) assets translations
	MD_TEST_DATABASE_URL=$(MYSQL_URL) MD_TEST_REDIS_URL=$(REDIS_URL) $(PY) -m pytest -q

LINT_PATHS := app workers migrations tests

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

bench: $(STAMP)
	$(PY) tests/benchmarks/ingest.py

clean:
	rm -rf $(VENV) app/static/vendor packaging/assets/node_modules
