# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/riskbudget/v1/*.proto)
CONFIG ?= config/default.yaml

CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver

.PHONY: install browser run test audit bench soak backtest proto proto-check lint-proto clean

$(STAMP): pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ./client -e '.[dev,backtest]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP) node_modules/.installed browser

## Headless Chromium and its driver for the browser test (tests/e2e/test_dashboard_browser.py):
## Debian's chromium and chromium-driver, installed only when one of the two is missing.
browser:
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then exit 0; fi; \
	echo "$(CHROMIUM) or $(CHROMEDRIVER) is missing: installing chromium and chromium-driver"; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "make browser: no apt-get here; install Chromium at $(CHROMIUM) and chromedriver at $(CHROMEDRIVER)" >&2; \
		exit 1; \
	fi; \
	if [ "$$(id -u)" -eq 0 ]; then as_root=""; \
	elif command -v sudo >/dev/null 2>&1; then as_root="sudo"; \
	else \
		echo "make browser: not root and no sudo; as root run: apt-get update && apt-get install -y chromium chromium-driver" >&2; \
		exit 1; \
	fi; \
	$$as_root apt-get update && \
	$$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver || exit 1; \
	if [ ! -x $(CHROMIUM) ] || [ ! -x $(CHROMEDRIVER) ]; then \
		echo "make browser: apt-get installed chromium and chromium-driver but $(CHROMIUM) or $(CHROMEDRIVER) is still missing" >&2; \
		exit 1; \
	fi

## Start the sidecar on config/default.yaml (embedded defaults, no outside service).
run: $(STAMP)
	$(VENV)/bin/riskbudget serve --config $(CONFIG)

## The whole test suite, with the contract checks first.
test: install lint-proto proto-check
	$(PY) -m pytest

$(VENV)/.audit-installed: $(STAMP)
	$(PY) -m pip install --quiet 'pip-audit>=2.7'
	touch $@

## Known vulnerabilities in the installed dependencies: pip-audit over the venv against PyPI's
## advisory data (the project's own editable packages skipped). --strict: a dependency that
## cannot be audited fails the target too; it never passes without having checked.
audit: $(VENV)/.audit-installed
	$(PY) -m pip_audit --skip-editable --strict --progress-spinner off --desc on

$(VENV)/.bench-installed: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $@

## Performance figures (bench/, about 5 minutes), each a table against its target and JSON in
## bench-results/: CheckTrade's own work per store backend; the ERC solve against skfolio and
## Riskfolio-Lib and the budget recompute against the number of symbols; a real sidecar
## process under client processes over gRPC (CheckTrade against a no-op, under load, regime
## response, memory).
bench: $(VENV)/.bench-installed
	mkdir -p bench-results
	PYTHONPATH=. $(PY) bench/hot_path.py | tee bench-results/hot_path.json
	PYTHONPATH=. $(PY) bench/engine_bench.py
	PYTHONPATH=. $(PY) bench/rpc_load.py

## Reliability under load (bench/soak.py, about SOAK_MINUTES + 3 minutes, loopback only): a real
## sidecar process (SQLite) at 80% of its measured CheckTrade capacity for SOAK_MINUTES, its memory
## and file descriptors sampled; then 3x capacity with sidecar.max_concurrent_rpcs 16, and the
## recovery. A table, and JSON in bench-results/soak.json.
SOAK_MINUTES ?= 10

soak: $(STAMP)
	mkdir -p bench-results
	PYTHONPATH=. $(PY) bench/soak.py --minutes $(SOAK_MINUTES) --out bench-results/soak.json

## Backtest the dynamic budget against static allocation on the S&P 500 prices that skfolio
## ships in its wheel (read offline): one table per example; reports and charts in backtest-results/.
BACKTESTS := sp500_index:sp500-index sp500_vol_target:sp500-index sp500:sp500

backtest: $(STAMP)
	@for case in $(BACKTESTS); do \
		name=$${case%%:*}; \
		$(VENV)/bin/riskbudget backtest --dataset $${case##*:} \
			--config examples/backtest/$$name.yaml --out backtest-results/$$name || exit 1; \
		echo; \
	done

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
