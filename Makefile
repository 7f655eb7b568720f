# vigil - build, test and run.
#
#   make            build every program into build/bin/
#   make asan       the same with ASan+UBSan into build/asan/, then the test suite
#   make test       build (normal and ASan), start the local cluster, run everything
#   make demo       bring up the local control plane and show it
#   make deps       install the Debian packages the build and tests need
#   make fuzz       build libFuzzer targets (clang) and run each for FUZZ_SECONDS
#
# Layout conventions the rules below rely on:
#   lib/*.c                     -> libvigil.a (headers in lib/vigil/)
#   <prog-dir>/*.c              -> build/bin/<name> (table PROGRAMS below)
#   <dir>/test/test_*.c         -> build/test/<dir>/test_* (cmocka), linked
#                                  with the directory's objects minus main.o
#   <dir>/test/e2e_*.c          -> build/e2e/<dir>/e2e_*, the same, run
#                                  against the local cluster
#   e2e/test_*.c                -> build/e2e/test_* (run against the cluster)
#   lib/fuzz/fuzz_*.c           -> build/fuzz/fuzz_* (clang libFuzzer)

BUILD    ?= build
CC       ?= gcc
ifeq ($(origin CC),default)
CC       := gcc
endif
SAN      ?=
OPT      ?= -O2 -g

PKGS     := libcurl jansson yaml-0.1 openssl libpq hiredis libwebsockets libargon2 libzstd

WARN     := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wwrite-strings -Wpointer-arith \
            -Wvla -Wundef -Wimplicit-fallthrough -fno-common -Werror
CPPFLAGS += -D_GNU_SOURCE -Ilib -MMD -MP
CFLAGS   += -std=c11 $(OPT) $(WARN) $(SAN) -pthread
LDFLAGS  += $(SAN) -pthread

# V=1 shows every command
ifeq ($(V),1)
Q_CC :=
else
Q_CC = @echo "  CC      $@";
endif

DEPS_STAMP := build/.deps-ok
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)
CPPFLAGS += $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lm

# name:directory of every program; the binary is built once its directory has
# a main.c, and the directory's other objects link into its tests before that
PROGRAMS := vigil-operator:operator \
            vigil-gateway:controlplane/gateway \
            vigil-worker:controlplane/worker \
            vigil-brain:controlplane/brain \
            vigil-agent:agents/scanner

LIB_SRC := $(wildcard lib/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIBVIGIL := $(BUILD)/lib/libvigil.a
# linked into every test binary: real PostgreSQL/Redis servers for tests
TS_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard lib/testsupport/*.c))

.PHONY: all asan test test-unit demo demo-down deps cluster-up cluster-down \
        fuzz clean format check-format
.DEFAULT_GOAL := all
# objects of tests are built through pattern chains; keep them so an
# unchanged tree rebuilds nothing
.SECONDARY:

all: $(DEPS_STAMP) $(LIBVIGIL) programs tests

$(DEPS_STAMP): scripts/deps.sh
	@bash scripts/deps.sh
	@mkdir -p $(dir $@) && touch $@

deps:
	@bash scripts/deps.sh
	@mkdir -p $(dir $(DEPS_STAMP)) && touch $(DEPS_STAMP)

# Objects wait for the dependency check so a fresh machine needs no manual step.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
$(BUILD)/obj/%/main.o: CPPFLAGS += -DVIGIL_VERSION=\"$(VERSION)\"
# the version is compiled into each main.o: a new one rebuilds them
VERSION_STAMP := $(BUILD)/version.stamp
$(shell mkdir -p $(BUILD) && [ "$$(cat $(VERSION_STAMP) 2>/dev/null)" = "$(VERSION)" ] || echo "$(VERSION)" > $(VERSION_STAMP))
$(foreach p,$(PROGRAMS),$(BUILD)/obj/$(word 2,$(subst :, ,$(p)))/main.o): $(VERSION_STAMP)

$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(Q_CC)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# the migrations are assembled into db_migrate.o (.incbin)
$(BUILD)/obj/lib/db_migrate.o: $(wildcard lib/db/migrations/*.sql)

$(LIBVIGIL): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# --- programs -----------------------------------------------------------
BIN_TARGETS :=
TEST_TARGETS :=

# $(1)=program name, $(2)=directory
define PROGRAM_RULES
$(2)_SRC := $$(wildcard $(2)/*.c)
$(2)_OBJ := $$($(2)_SRC:%.c=$$(BUILD)/obj/%.o)
$(2)_LIBOBJ := $$(filter-out $$(BUILD)/obj/$(2)/main.o,$$($(2)_OBJ))
BIN_TARGETS += $$(if $$(wildcard $(2)/main.c),$$(BUILD)/bin/$(1))
$$(BUILD)/bin/$(1): $$($(2)_OBJ) $$(LIBVIGIL)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$($(2)_OBJ) $$(LIBVIGIL) $$(LDLIBS) $$($(1)_LIBS)
endef

# $(1)=directory whose test/test_*.c are cmocka tests, $(2)=objects they link
define TEST_RULES
$(1)_TESTS := $$(patsubst $(1)/test/%.c,$$(BUILD)/test/$(1)/%,$$(wildcard $(1)/test/test_*.c))
TEST_TARGETS += $$($(1)_TESTS)
$$(BUILD)/obj/$(1)/test/%.o: CPPFLAGS += -I$(1)
$$(BUILD)/test/$(1)/%: $$(BUILD)/obj/$(1)/test/%.o $(2) $$(TS_OBJ) $$(LIBVIGIL)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$< $(2) $$(TS_OBJ) $$(LIBVIGIL) $$(LDLIBS) $$(CMOCKA_LIBS)
# <dir>/test/e2e_*.c: like the tests above, but run against the local cluster
$(1)_E2E := $$(patsubst $(1)/test/%.c,$$(BUILD)/e2e/$(1)/%,$$(wildcard $(1)/test/e2e_*.c))
TEST_TARGETS += $$($(1)_E2E)
$$(BUILD)/e2e/$(1)/%: $$(BUILD)/obj/$(1)/test/%.o $(2) $$(TS_OBJ) $$(LIBVIGIL)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$< $(2) $$(TS_OBJ) $$(LIBVIGIL) $$(LDLIBS) $$(CMOCKA_LIBS)
endef

$(foreach p,$(PROGRAMS),$(if $(wildcard $(word 2,$(subst :, ,$(p)))/*.c),\
  $(eval $(call PROGRAM_RULES,$(word 1,$(subst :, ,$(p))),$(word 2,$(subst :, ,$(p)))))))
$(eval $(call TEST_RULES,lib,))
$(foreach p,$(PROGRAMS),$(if $(wildcard $(word 2,$(subst :, ,$(p)))/test/*.c),\
  $(eval $(call TEST_RULES,$(word 2,$(subst :, ,$(p))),$$($(word 2,$(subst :, ,$(p)))_LIBOBJ)))))

# e2e test programs: C clients driving the local cluster and real services
E2E_TESTS := $(patsubst e2e/%.c,$(BUILD)/e2e/%,$(wildcard e2e/test_*.c))
TEST_TARGETS += $(E2E_TESTS)
$(BUILD)/e2e/%: $(BUILD)/obj/e2e/%.o $(TS_OBJ) $(LIBVIGIL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TS_OBJ) $(LIBVIGIL) $(LDLIBS) $(CMOCKA_LIBS)

programs: $(BIN_TARGETS)
tests: $(TEST_TARGETS)
.PHONY: programs tests

# --- sanitizers ---------------------------------------------------------
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

asan-build: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory BUILD=build/asan SAN="$(ASAN_FLAGS)" OPT="-O1 -g" all

asan: asan-build
	@bash scripts/run-tests.sh build/asan

.PHONY: asan-build

# --- tests --------------------------------------------------------------
# Unit, integration and e2e suites, normal build then ASan+UBSan build.
# Every libFuzzer target also runs briefly (FUZZ_TEST_SECONDS each).
FUZZ_TEST_SECONDS ?= 10
test: all asan-build fuzz-build
	@FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) bash scripts/run-tests.sh build build/asan

test-unit: all
	@VIGIL_SUITES=unit bash scripts/run-tests.sh build

# --- local Kubernetes control plane -------------------------------------
cluster-up:
	@bash e2e/cluster/up.sh

cluster-down:
	@bash e2e/cluster/down.sh

demo: all
	@bash scripts/demo.sh

demo-down:
	@bash scripts/demo.sh down

# --- fuzzing ------------------------------------------------------------
FUZZ_SECONDS ?= 60
FUZZ_SRC := $(wildcard lib/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst lib/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
FUZZ_CFLAGS := -std=c11 -g -O1 -D_GNU_SOURCE -Ilib $(PKG_CFLAGS) \
               -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
# libvigil once, instrumented for coverage, shared by every target
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=build/fuzz/obj/%.o)

build/fuzz/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<
build/fuzz/obj/lib/db_migrate.o: $(wildcard lib/db/migrations/*.sql)

build/fuzz/%: lib/fuzz/%.c $(FUZZ_LIB_OBJ) $(wildcard lib/vigil/*.h) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJ) $(PKG_LIBS) -lm -pthread

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@bash scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

.PHONY: fuzz-build

# --- housekeeping -------------------------------------------------------
format:
	clang-format -i $(shell git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)

# --- benchmarks (never part of make test) -------------------------------
#   make bench-operator   vigil-operator at 1,000 Tenants (TENANTS=n):
#                         time to Ready, RSS, CPU, requests, restart cost
bench-operator: $(DEPS_STAMP) $(BUILD)/bin/vigil-operator
	@VIGIL_BUILD=$(BUILD) bash bench/operator.sh $(TENANTS)
.PHONY: bench-operator

#   make bench-agent      vigil-agent vs nmap -sT on 10,000 open loopback ports
#   make bench-queue      worker tasks/s vs redis-benchmark
#   make bench-report     a brain report over 100,000 findings
bench-agent: $(DEPS_STAMP) $(BUILD)/bin/vigil-agent
	@VIGIL_BUILD=$(BUILD) bash bench/agent.sh
bench-queue: all
	@BUILD=$(BUILD) bash bench/queue.sh
bench-report: all
	@BUILD=$(BUILD) VIGIL_BUILD=$(BUILD) bash bench/report.sh
.PHONY: bench-agent bench-queue bench-report

# --- container images ---------------------------------------------------
#   make images     vigil/base:bookworm (debootstrap, reused while unchanged)
#                   and vigil/vigil-<program>:$(VERSION) and :latest;
#                   e2e/test_images.sh (in make test) builds and runs them
images: $(DEPS_STAMP) programs
	@VERSION=$(VERSION) bash scripts/images.sh
.PHONY: images

# --- Helm chart ------------------------------------------------------------
#   make helm-lint   helm lint --strict (helm is built from the Go module proxy)
#   make helm-sync   copy crds/ and the operator's RBAC into the chart, which
#                    e2e/test_helm.sh checks are identical
helm-lint:
	@"$$(bash scripts/helm.sh)" lint --strict helm/vigil
helm-sync:
	cp crds/*.yaml helm/vigil/crds/
	cp config/rbac/operator.yaml helm/vigil/files/operator-rbac.yaml
.PHONY: helm-lint helm-sync
