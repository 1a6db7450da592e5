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

.PHONY: install browser codegen-tools run test audit bench soak backtest proto proto-check lint-proto \
	breaking-proto release-proto contract-docs contract-docs-check clean

$(STAMP): pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ./client -e '.[dev,backtest]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

client/node/node_modules/.installed: client/node/package.json client/node/package-lock.json
	npm ci --prefix client/node --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP) node_modules/.installed client/node/node_modules/.installed browser codegen-tools

## Debian packages $(2), installed (with apt-get, as root or through sudo) only when one of the
## files $(1) is missing; fails, saying what to install, where that cannot be done.
define apt_install
	@missing=""; for file in $(1); do [ -e $$file ] || missing="$$missing $$file"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "missing:$$missing: installing $(2)"; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "make $@: no apt-get here; install what provides$$missing" >&2; \
		exit 1; \
	fi; \
	if [ "$$(id -u)" -eq 0 ]; then as_root=""; \
	elif command -v sudo >/dev/null 2>&1; then as_root="sudo"; \
	else \
		echo "make $@: not root and no sudo; as root run: apt-get update && apt-get install -y $(2)" >&2; \
		exit 1; \
	fi; \
	$$as_root apt-get update && \
	$$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y $(2) || exit 1; \
	for file in $(1); do \
		[ -e $$file ] || { echo "make $@: apt-get installed $(2) but $$file is still missing" >&2; exit 1; }; \
	done
endef

## Headless Chromium and its driver for the browser test (tests/e2e/test_dashboard_browser.py).
browser:
	$(call apt_install,$(CHROMIUM) $(CHROMEDRIVER),chromium chromium-driver)

## What tests/polyglot/test_codegen.py runs the buf.gen templates of examples/codegen with, and
## compiles their Java and C++ output with: protoc, the Go, Java and C++ gRPC plugins, the
## protobuf and gRPC Java jars and C++ headers (Debian's), javac and g++.
CODEGEN_FILES := /usr/bin/protoc /usr/bin/protoc-gen-go /usr/bin/protoc-gen-go-grpc /usr/bin/grpc_cpp_plugin \
	/usr/bin/grpc_java_plugin /usr/share/java/protobuf.jar /usr/share/java/grpc-stub.jar /usr/share/java/guava.jar \
	/usr/share/java/geronimo-annotation-1.3-spec.jar /usr/include/grpcpp/grpcpp.h /usr/bin/javac /usr/bin/g++
CODEGEN_PACKAGES := protobuf-compiler protoc-gen-go protoc-gen-go-grpc protobuf-compiler-grpc \
	protobuf-compiler-grpc-java-plugin libprotobuf-java libgrpc-java libguava-java libgeronimo-annotation-1.3-spec-java \
	libgrpc++-dev default-jdk-headless g++

codegen-tools:
	$(call apt_install,$(CODEGEN_FILES),$(CODEGEN_PACKAGES))

## Start the sidecar on config/default.yaml (embedded defaults, no outside service).
run: $(STAMP)
	$(VENV)/bin/riskbudget serve --config $(CONFIG)

## The whole test suite, with the contract checks first.
test: install lint-proto proto-check breaking-proto contract-docs-check
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

## The contract as released: a buf image of proto/ (see release-proto). Clients built against it
## must keep working, so every change is checked against it.
RELEASED_CONTRACT := proto/released/riskbudget-v1.binpb
## What breaking-proto checks: the working tree, or another copy of it (PROTO_TREE=dir).
PROTO_TREE ?= .

## Fail when the contract (PROTO_TREE) would break clients of the released one: buf breaking with
## buf.yaml's rules (FILE, the strictest: wire, JSON and generated-source compatibility).
breaking-proto: node_modules/.installed
	npx --no-install buf breaking $(PROTO_TREE) --against $(RELEASED_CONTRACT)

## Release the contract as it stands: overwrite the released image, then commit it (README, "The
## contract as released"). Only compatible changes can be released under riskbudget.v1.
release-proto: node_modules/.installed breaking-proto
	npx --no-install buf build --exclude-source-info -o $(RELEASED_CONTRACT)

CONTRACT_DOCS := docs/contract.md

## Regenerate the contract reference (docs/contract.md) from the comments in the proto.
contract-docs: $(STAMP) node_modules/.installed
	npx --no-install buf build --exclude-imports -o - | $(PY) tools/contract_reference.py > $(CONTRACT_DOCS).tmp
	mv $(CONTRACT_DOCS).tmp $(CONTRACT_DOCS)

## Fail when the committed contract reference differs from what the proto generates.
contract-docs-check: $(STAMP) node_modules/.installed
	@set -o pipefail && npx --no-install buf build --exclude-imports -o - | $(PY) tools/contract_reference.py | \
		diff -u $(CONTRACT_DOCS) - && echo "contract reference matches the proto"

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
