# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/riskbudget/v1/*.proto)
CONFIG ?= config/default.yaml

.PHONY: install run test proto proto-check lint-proto clean

$(STAMP): pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ./client -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP) node_modules/.installed

## Start the sidecar on config/default.yaml (embedded defaults, no outside service).
run: $(STAMP)
	$(VENV)/bin/riskbudget serve --config $(CONFIG)

## The whole test suite, with the contract checks first.
test: install lint-proto proto-check
	$(PY) -m pytest

## buf lint over the contract.
lint-proto: node_modules/.installed
	npx --no-install buf lint
	npx --no-install buf format --diff --exit-code

## Regenerate the Python stubs (and .pyi type stubs) from the proto.
proto: $(STAMP)
	rm -f client/riskbudget/v1/*_pb2*.py client/riskbudget/v1/*_pb2*.pyi
	$(PY) -m grpc_tools.protoc -I proto --python_out=client --pyi_out=client \
		--grpc_python_out=client $(PROTOS)
	rm -f client/riskbudget/v1/types_pb2_grpc.py

## Fail when the committed stubs differ from what the proto generates.
proto-check: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(PY) -m grpc_tools.protoc -I proto --python_out=$$tmp --pyi_out=$$tmp \
		--grpc_python_out=$$tmp $(PROTOS) && rm -f $$tmp/riskbudget/v1/types_pb2_grpc.py && \
	diff -r -x __init__.py -x __pycache__ $$tmp/riskbudget client/riskbudget && \
	echo "generated stubs match the proto"

clean:
	rm -rf $(VENV) node_modules
