# The two commands of the README:
#   make run    the example chat at http://127.0.0.1:5000 (PORT=... to change the port)
#   make test   every test suite, after all the set-up a fresh Debian machine needs
#
# Set-up steps, each idempotent and usable on its own:
#   make system   Debian's chromium, redis-server, gcc and python3-dev, installed only if missing
#   make venv     .venv with the package installed in editable mode, with the test and
#                 compile extras
#   make native   the hot-path modules compiled with mypyc (flask_sio09/native.py); again
#                 only when one of their sources changed
#   make vendor   socket.io-client 0.9.16 (the browser file, and for the tests the Node
#                 package) and the Node `ws` client (tests only) from the npm registry
#                 into vendor/ (git-ignored)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The interpreter the venv is made from: Debian's own python3 when it is 3.11 or newer,
# else the first python3 on PATH; PYTHON=... chooses another. Debian builds its python3
# with profile-guided and link-time optimisation, the interpreter in the executable; a
# default pyenv build (shared libpython, no PGO) that comes first on PATH runs the same
# code with about 10% more CPU per message (docs/performance.md, "The interpreter's build").
SYSTEM_PYTHON := /usr/bin/python3
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell $(SYSTEM_PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  >/dev/null 2>&1 && echo $(SYSTEM_PYTHON) || echo python3)
endif
VENV := .venv
VENV_PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.flask_sio09-installed

# The browser client is fetched, never committed: the project ships none of its code.
CLIENT_NAME := socket.io-client
CLIENT_VERSION := 0.9.16
# sha1 of the registry tarball (npm's "shasum" for this version); a different file is refused.
CLIENT_SHA1 := 4da7515c5e773041d1b423970415bcc430f35fc6
CLIENT_JS := vendor/socket.io.js

# The Node.js `ws` client of the WebSocket framer's interop tests
# (tests/integration/test_wsframe_interop.py), installed into vendor/node_modules.
WS_VERSION := 8.23.0
WS_STAMP := vendor/node_modules/.ws-$(WS_VERSION)-installed

# socket.io-client 0.9.16 as Node.js programs use it, with its own ws 0.4
# (tests/integration/test_node_client.py), installed into vendor/sio-node.
NODE_CLIENT_STAMP := vendor/sio-node/.$(CLIENT_NAME)-$(CLIENT_VERSION)-installed

PYTEST_ARGS ?=

# The compiled modules (read from the MODULES line of flask_sio09/native.py) and their
# build record.
NATIVE_MODULES := $(shell sed -n 's/^MODULES = (\(.*\))$$/\1/p' flask_sio09/native.py | tr -d '",')
NATIVE_SOURCES := $(patsubst %,flask_sio09/%.py,$(NATIVE_MODULES)) flask_sio09/native.py \
  flask_sio09/build_native.py
NATIVE_RECORD := flask_sio09/_native.json

.PHONY: help run test system venv native vendor clean bench bench-codec

help:
	@echo "make run     serve the example chat on http://127.0.0.1:$${PORT:-5000}"
	@echo "make test    set everything up, then run every test (PYTEST_ARGS='...' to narrow)"
	@echo "make system | venv | native | vendor    the set-up steps alone"
	@echo "make clean   remove vendor/ and build output (keeps .venv)"
	@echo "make bench   compare with Node socket.io 0.9 and Flask-SocketIO (~10 min; BENCH_ARGS=--quick)"
	@echo "make bench-codec   packet codec micro-benchmarks"

# Without a C compiler the example runs the same code uncompiled (a warning says so).
run: venv vendor
	@$(MAKE) --no-print-directory native || \
	  echo "run: the hot-path modules are not compiled; running them as Python" >&2
	$(VENV_PY) -m example_app

# make stops at the first failing step and exits non-zero when pytest fails.
# Every suite runs the compiled modules (test_native.py fails if they are not in use);
# then the unit suite runs again on their Python sources, the fallback without a compiler.
test: system venv native vendor
	FLASK_SIO09_EXPECT_NATIVE=1 $(VENV_PY) -m pytest $(PYTEST_ARGS)
	FLASK_SIO09_PURE=1 $(VENV_PY) -m pytest tests/unit $(PYTEST_ARGS)

# Debian packages for the browser and Redis suites, and the C compiler and headers
# that `make native` needs. Nothing happens when they are present; without root or
# apt-get, say what is missing and go on (those suites, or the build, then fail).
system:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc"; \
	test -f "$$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" \
	  || missing="$$missing python3-dev"; \
	if [ -z "$$missing" ]; then \
	  echo "system: chromium, redis-server, gcc and Python's headers are installed"; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	  echo "system: missing Debian packages:$$missing" >&2; \
	  echo "system: not root or no apt-get, so not installing them; as root run: apt-get install -y$$missing" >&2; \
	else \
	  echo "system: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update; \
	  apt-get install -y $$missing; \
	fi

venv: $(VENV_STAMP)

# Re-runs only when pyproject.toml changes. A Debian python3 without its venv module
# gets python3-venv installed when we are root with apt-get.
$(VENV_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "venv: flask_sio09 needs Python 3.11 or newer; $(PYTHON) is older" >&2; exit 1; }
	@if [ ! -x $(VENV_PY) ]; then \
	  echo "venv: making $(VENV) from $(PYTHON) ($$($(PYTHON) -V 2>&1))"; \
	  if ! $(PYTHON) -m venv $(VENV); then \
	    rm -rf $(VENV); \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      echo "venv: installing Debian's python3-venv"; \
	      export DEBIAN_FRONTEND=noninteractive; \
	      apt-get update; \
	      apt-get install -y python3-venv; \
	      $(PYTHON) -m venv $(VENV); \
	    else \
	      echo "venv: '$(PYTHON) -m venv' failed; on Debian, install python3-venv" >&2; \
	      exit 1; \
	    fi; \
	  fi; \
	fi
	$(VENV_PY) -m pip install -e '.[test,compile]'
	@touch $@

native: $(NATIVE_RECORD)

# mypyc compiles them in about a minute; build_native writes the record last.
$(NATIVE_RECORD): $(NATIVE_SOURCES) $(VENV_STAMP)
	$(VENV_PY) -m flask_sio09.build_native

vendor: $(CLIENT_JS) $(WS_STAMP) $(NODE_CLIENT_STAMP)

# npm pack downloads the package tarball alone: no dependencies, no install scripts.
$(CLIENT_JS):
	@command -v npm >/dev/null 2>&1 || \
	  { echo "vendor: npm is needed to fetch $(CLIENT_NAME) $(CLIENT_VERSION) (Debian: apt-get install npm)" >&2; exit 1; }
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "vendor: fetching $(CLIENT_NAME)@$(CLIENT_VERSION) from the npm registry"; \
	(cd "$$tmp" && npm pack --silent $(CLIENT_NAME)@$(CLIENT_VERSION) >/dev/null); \
	tgz="$$tmp/$(CLIENT_NAME)-$(CLIENT_VERSION).tgz"; \
	echo "$(CLIENT_SHA1)  $$tgz" | sha1sum --check --quiet -; \
	tar -xzf "$$tgz" -C "$$tmp" package/dist/socket.io.js; \
	grep -q "io.version = '$(CLIENT_VERSION)'" "$$tmp/package/dist/socket.io.js"; \
	mkdir -p $(dir $@); \
	cp "$$tmp/package/dist/socket.io.js" $@.part; \
	mv $@.part $@; \
	echo "vendor: wrote $@"

# --no-save: no package.json or lock file is written; --ignore-scripts: ws has none.
$(WS_STAMP):
	@command -v npm >/dev/null 2>&1 || \
	  { echo "vendor: npm is needed to install ws $(WS_VERSION) (Debian: apt-get install npm)" >&2; exit 1; }
	npm install --prefix vendor --no-save --no-audit --no-fund --ignore-scripts ws@$(WS_VERSION)
	@grep -q '"version": "$(WS_VERSION)"' vendor/node_modules/ws/package.json
	@touch $@

# --ignore-scripts: ws 0.4's optional native build is skipped; it runs in pure JavaScript.
$(NODE_CLIENT_STAMP):
	@command -v npm >/dev/null 2>&1 || \
	  { echo "vendor: npm is needed to install $(CLIENT_NAME) $(CLIENT_VERSION) (Debian: apt-get install npm)" >&2; exit 1; }
	npm install --prefix vendor/sio-node --no-save --no-audit --no-fund --ignore-scripts $(CLIENT_NAME)@$(CLIENT_VERSION)
	@grep -q '"version": "$(CLIENT_VERSION)"' vendor/sio-node/node_modules/$(CLIENT_NAME)/package.json
	@touch $@

# The peers (npm socket.io 0.9.19 and ws, PyPI flask-socketio) go into the
# git-ignored bench/.peers/, installed by run.py on first use. See bench/README.md.
BENCH_ARGS ?=

bench: venv native vendor
	$(VENV_PY) bench/run.py $(BENCH_ARGS)

bench-codec: venv
	$(VENV_PY) bench/codec.py

clean:
	rm -rf vendor build dist
	$(VENV_PY) -m flask_sio09.build_native clean 2>/dev/null || true
