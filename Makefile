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

.PHONY: help run test lint typecheck proto install check-infra services migrate unit integration e2e deploy-tools bench clean token

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
	@# The descriptor set Envoy's gRPC-JSON transcoder reads.
	$(PY) -m grpc_tools.protoc -Iprotos -Ithird_party/googleapis --include_imports \
	  --descriptor_set_out=$(GEN).tmp/spring.pb $(PROTO_FILES)
	find $(GEN).tmp/spring -type d -exec touch {}/__init__.py \;
	touch $(GEN).tmp/spring/py.typed $(GEN).tmp/.stamp
	rm -rf $(GEN) && mv $(GEN).tmp $(GEN)

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

# --- the two commands --------------------------------------------------------
run: migrate
	$(BIN)/springctl dev-run

test: check-infra lint typecheck deploy-tools
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
	$(BIN)/mypy services/servicekit/src services/ingest/src services/friendship/src services/analyzer/src services/springctl/src

unit: install
	$(BIN)/pytest tests/unit tests/contract

integration: check-infra
	$(BIN)/pytest tests/integration

e2e: check-infra
	$(BIN)/pytest tests/e2e

token: install
	@$(BIN)/springctl token

clean:
	rm -rf $(VENV) .venv-deploy $(GEN) $(GEN).tmp .pytest_cache .mypy_cache .ruff_cache
