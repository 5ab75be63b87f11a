# pqshim — connection policy for any libpq program, loaded with LD_PRELOAD.

PREFIX   ?= /usr/local
DESTDIR  ?=
# Where make install puts the library: PREFIX/lib/pqshim, which the launcher
# finds from its own location. Setting LIBDIR (a distribution package:
# /usr/lib/<multiarch>/pqshim) installs it there and compiles the directory
# into the launcher.
LIBDIR   ?=
PKGLIBDIR = $(if $(LIBDIR),$(LIBDIR),$(PREFIX)/lib/pqshim)
MANDIR   ?= $(PREFIX)/share/man
# The version, in one place: the file VERSION (debian/changelog must agree).
VERSION  := $(shell cat VERSION)
BUILD    ?= build
CC       ?= cc
PG_INC   := $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS   ?= -O2 -g
SAN      ?=
SHIM_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) $(SAN) -fPIC -fvisibility=hidden \
               -I$(PG_INC)
SHIM_LDFLAGS := -shared -Wl,-z,defs -Wl,--version-script=shim/libpqshim.map \
                $(SAN)
SHIM_LIBS := -ldl -lpthread

# The loader's files (see UNINSTRUMENTED) are compiled apart.
UNINSTRUMENTED := shim/dlsym.c shim/loader.c
SHIM_SRC := $(filter-out $(UNINSTRUMENTED),$(wildcard shim/*.c))
SHIM_OBJ := $(patsubst shim/%.c,$(BUILD)/obj/%.o,$(SHIM_SRC)) \
            $(patsubst shim/%.c,$(BUILD)/obj/%.o,$(UNINSTRUMENTED))
HEADERS  := $(wildcard shim/*.h shim/*.def)
# Each object depends on the headers it includes (-MMD: the compiler
# writes them to a .d file next to it; -MP: a removed header is no error)
# and on this file (its flags; an object built before .d files existed).
DEPFLAGS := -MMD -MP

all: $(BUILD)/libpqshim.so $(BUILD)/pqshim $(BUILD)/pqshimctl

$(BUILD)/obj/%.o: shim/%.c Makefile | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(DEPFLAGS) $(SHIM_CFLAGS) -c -o $@ $<

# The dlsym wrapper must pass lookups on as a tail call (see the file), and
# sanitizer runtimes call it (and the real dlsym it finds, loader.c) before
# instrumented code may run: both are always optimised, never instrumented.
$(patsubst shim/%.c,$(BUILD)/obj/%.o,$(UNINSTRUMENTED)): $(BUILD)/obj/%.o: shim/%.c Makefile | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(DEPFLAGS) -std=gnu11 $(WARN) -O2 -g -foptimize-sibling-calls -fPIC \
	    -fvisibility=hidden -I$(PG_INC) -c -o $@ $<

-include $(SHIM_OBJ:.o=.d)

$(BUILD)/libpqshim.so: $(SHIM_OBJ) shim/libpqshim.map
	$(CC) $(SHIM_LDFLAGS) $(LDFLAGS) -o $@ $(SHIM_OBJ) $(SHIM_LIBS)

TOOL_DEFS := -DPQSHIM_VERSION='"$(VERSION)"' $(if $(LIBDIR),-DPQSHIM_LIBDIR='"$(LIBDIR)"')

# The launcher and pqshimctl have VERSION (and LIBDIR) compiled in: this
# file changes when they do, so both are rebuilt.
$(BUILD)/tools.cfg: FORCE | $(BUILD)
	@echo 'VERSION=$(VERSION) LIBDIR=$(LIBDIR)' | cmp -s - $@ || \
	    echo 'VERSION=$(VERSION) LIBDIR=$(LIBDIR)' >$@

$(BUILD)/pqshim: tools/pqshim.c shim/settings.h shim/settings.def shim/strict_number.h \
                 $(BUILD)/tools.cfg | $(BUILD)
	$(CC) -std=gnu11 $(WARN) $(CPPFLAGS) $(CFLAGS) $(SAN) $(TOOL_DEFS) $(LDFLAGS) -o $@ $<

# pqshimctl: tools/ctl/, one file per concern, with the shim's socket path
# expansion and escaping (and the control protocol's words).
CTL_CFLAGS  := -std=gnu11 $(WARN) $(CPPFLAGS) $(CFLAGS) $(SAN)
CTL_HEADERS := $(wildcard tools/ctl/*.h) shim/control_protocol.h shim/control_path.h \
               shim/escape.h
CTL_OBJ     := $(patsubst tools/ctl/%.c,$(BUILD)/ctl/%.o,$(wildcard tools/ctl/*.c)) \
               $(BUILD)/ctl/control_path.o $(BUILD)/ctl/escape.o

$(BUILD)/ctl/%.o: tools/ctl/%.c $(CTL_HEADERS) | $(BUILD)/ctl
	$(CC) $(CTL_CFLAGS) -c -o $@ $<

$(BUILD)/ctl/main.o: tools/ctl/main.c $(CTL_HEADERS) $(BUILD)/tools.cfg | $(BUILD)/ctl
	$(CC) $(CTL_CFLAGS) $(TOOL_DEFS) -c -o $@ $<

$(BUILD)/ctl/control_path.o: shim/control_path.c shim/control_path.h | $(BUILD)/ctl
	$(CC) $(CTL_CFLAGS) -c -o $@ $<

$(BUILD)/ctl/escape.o: shim/escape.c shim/escape.h | $(BUILD)/ctl
	$(CC) $(CTL_CFLAGS) -c -o $@ $<

$(BUILD)/pqshimctl: $(CTL_OBJ)
	$(CC) $(CTL_CFLAGS) $(LDFLAGS) -o $@ $(CTL_OBJ)

$(BUILD) $(BUILD)/obj $(BUILD)/ctl:
	mkdir -p $@

# ---- tests --------------------------------------------------------------

TEST_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) $(SAN) -I$(PG_INC) -Ishim
UNIT_SRC := $(wildcard tests/unit/*.c)
TEST_PROGS := $(patsubst tests/clients/%.c,$(BUILD)/tests/%,$(wildcard tests/clients/*.c))

$(BUILD)/tests:
	mkdir -p $@

UNIT_SHIM := shim/util.c shim/config.c shim/log.c shim/target.c shim/target_cache.c \
             shim/target_resolve.c shim/identity.c shim/escape.c
$(BUILD)/tests/unit: $(UNIT_SRC) $(UNIT_SHIM) $(HEADERS) | $(BUILD)/tests
	$(CC) $(TEST_CFLAGS) -o $@ $(UNIT_SRC) $(UNIT_SHIM) -lpq -lpthread -lm

$(BUILD)/tests/%: tests/clients/%.c | $(BUILD)/tests
	$(CC) $(TEST_CFLAGS) -o $@ $< -lpq -lpthread

$(BUILD)/tests/libnextprobe.so: tests/lib/nextprobe.c | $(BUILD)/tests
	$(CC) -std=gnu11 $(WARN) -O2 -fPIC -shared -o $@ $< -ldl

# A plugin linked to libpq and the driver that dlopens it (the driver is not
# linked to libpq: like PHP, it only gets libpq through its plugins).
$(BUILD)/tests/libpqmod.so: tests/lib/pqmod.c | $(BUILD)/tests
	$(CC) $(TEST_CFLAGS) -fPIC -shared -o $@ $< -lpq

$(BUILD)/tests/deepbind: tests/clients/deepbind.c | $(BUILD)/tests
	$(CC) $(TEST_CFLAGS) -o $@ $< -ldl

# libpq 17's cancel connection, stood in for on an older libpq (32-fresh.sh).
$(BUILD)/tests/libcancelconn.so: tests/lib/cancelconn.c | $(BUILD)/tests
	$(CC) -std=gnu11 $(WARN) -O2 -fPIC -shared -o $@ $<

$(BUILD)/tests/libswiftstub.so: tests/lib/asan_swift_stub.c | $(BUILD)/tests
	$(CC) -std=gnu11 $(WARN) -O2 -fPIC -shared -o $@ $<

# pqshimctl's JSON parser, linked alone.
$(BUILD)/tests/ctl_json_test: tests/unit/ctl/json_test.c tools/ctl/json.c tools/ctl/json.h \
                              | $(BUILD)/tests
	$(CC) $(TEST_CFLAGS) -o $@ tests/unit/ctl/json_test.c tools/ctl/json.c

# The modules call each other downwards only (tools/callgraph.sh reads the
# objects and fails on a cycle, naming it).
callgraph: $(BUILD)/libpqshim.so
	tools/callgraph.sh $(BUILD)/obj

test-build: all $(BUILD)/tests/unit $(BUILD)/tests/ctl_json_test $(TEST_PROGS) $(BUILD)/tests/libnextprobe.so \
            $(BUILD)/tests/libswiftstub.so $(BUILD)/tests/libpqmod.so $(BUILD)/tests/libcancelconn.so

# libFuzzer targets (need clang): the control socket's request handling,
# and pqshimctl's handling of replies.
#   make fuzz && build/fuzz/fuzz_request -dict=tests/fuzz/request.dict
#                build/fuzz/fuzz_reply
FUZZ_CC    ?= clang
FUZZ_FLAGS := -std=gnu11 $(WARN) -g -O1 -fsanitize=fuzzer,address,undefined
# Every shim file but those that reach libpq or a server (the target stubs
# what the rest needs from conn.c, hooks.c and real.c).
FUZZ_SRC   := tests/fuzz/fuzz_request.c $(filter-out shim/conn.c shim/hooks.c shim/real.c \
              shim/dlsym.c shim/loader.c shim/gotpatch.c shim/lifecycle.c shim/lifecycle_open.c shim/lifecycle_async.c shim/init.c shim/retry.c shim/gate.c shim/gate_socket.c \
              shim/settle.c shim/cancel.c shim/target_resolve.c shim/view.c,$(wildcard shim/*.c))
# What pqshimctl does with a reply once it has one: parse, render, merge.
FUZZ_REPLY_SRC := tests/fuzz/fuzz_reply.c $(addprefix tools/ctl/,json.c util.c table.c \
                  pool_text.c status.c health.c prom_merge.c) shim/escape.c

# The differential identity fuzzer at length: FUZZ_SEEDS runs of
# FUZZ_COUNT steps, each directly and through the capped pool against a
# real cluster (tests/integration/34-identity.sh; make check runs one
# short seed). About 0.8 connects a step.
FUZZ_SEEDS ?= 40
FUZZ_COUNT ?= 3000
fuzz-identity: deps
	$(MAKE) test-build
	PQSHIM_FUZZ_SEEDS="$$(seq -s ' ' 1 $(FUZZ_SEEDS))" PQSHIM_FUZZ_COUNT=$(FUZZ_COUNT) \
	    PQSHIM_FUZZ_REPORT=$(BUILD)/fuzz-identity.txt tests/run.sh identity_fuzz

fuzz: fuzz-identity
	@if command -v $(FUZZ_CC) >/dev/null 2>&1; then \
	    mkdir -p $(BUILD)/fuzz && \
	    echo "$(FUZZ_CC) ... -o $(BUILD)/fuzz/fuzz_request" && \
	    $(FUZZ_CC) $(FUZZ_FLAGS) -I$(PG_INC) -Ishim -o $(BUILD)/fuzz/fuzz_request \
	        $(FUZZ_SRC) -lpthread -lm && \
	    echo "$(FUZZ_CC) ... -o $(BUILD)/fuzz/fuzz_reply" && \
	    $(FUZZ_CC) $(FUZZ_FLAGS) -o $(BUILD)/fuzz/fuzz_reply $(FUZZ_REPLY_SRC); \
	else \
	    echo "make fuzz: $(FUZZ_CC) not found; install clang (e.g. apt-get install clang) and run it again"; \
	fi

deps:
	@tests/lib/deps.sh

# The sanitizer builds also check the shim's own bookkeeping (PQSHIM_DEBUG:
# a wrong pool count stops the program; never in a release build).
ASAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
        -DPQSHIM_DEBUG

# The test runner's own check, the whole suite, then the whole suite again
# with the shim and the test programs built under ASan + UBSan.
check: deps
	tests/runner-check.sh
	$(MAKE) test-build callgraph
	tests/run.sh
	$(MAKE) BUILD=build/asan SAN="$(ASAN)" test-build callgraph
	TEST_SANITIZER=asan BUILD=build/asan tests/run.sh

check-asan: deps
	$(MAKE) BUILD=build/asan SAN="$(ASAN)" test-build callgraph
	TEST_SANITIZER=asan BUILD=build/asan tests/run.sh

soak: test-build
	tests/soak.sh

check-valgrind: deps
	$(MAKE) test-build
	tests/valgrind.sh

check-tsan: deps
	$(MAKE) BUILD=build/tsan SAN="-fsanitize=thread -DPQSHIM_DEBUG" test-build
	TEST_SANITIZER=tsan BUILD=build/tsan tests/run.sh

compat: deps
	$(MAKE) test-build
	tests/compat.sh

$(BUILD)/bench_checkout: tools/bench_checkout.c | $(BUILD)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) -I$(PG_INC) -o $@ $< -lpq

bench: deps
	$(MAKE) all $(BUILD)/bench_checkout
	tools/bench.sh

demo: deps
	$(MAKE) all $(TEST_PROGS)
	tools/demo.sh

# ---- manual pages, packages ------------------------------------------------

# man/*.1 and man/*.7 are man(7) sources; @VERSION@ becomes the version.
MAN_SRC  := $(wildcard man/*.1 man/*.7)
MAN_OUT  := $(patsubst man/%,$(BUILD)/man/%,$(MAN_SRC))

$(BUILD)/man:
	mkdir -p $@

$(BUILD)/man/%: man/% VERSION | $(BUILD)/man
	sed 's/@VERSION@/$(VERSION)/g' $< >$@

# The pages, checked (groff -ww: no warning allowed; mandoc -Tlint and
# man --warnings when installed) and rendered to $(BUILD)/man/*.txt.
man: $(MAN_OUT)
	@command -v groff >/dev/null 2>&1 || { \
	    echo "make man: groff not found (apt-get install groff-base)"; exit 1; }
	@set -e; for page in $(MAN_OUT); do \
	    out=$$(LC_ALL=C.UTF-8 groff -man -ww -z $$page 2>&1); \
	    if [ -n "$$out" ]; then echo "$$page: groff:"; echo "$$out"; exit 1; fi; \
	    if command -v mandoc >/dev/null 2>&1; then \
	        out=$$(mandoc -Tlint -W warning $$page 2>&1 || true); \
	        if [ -n "$$out" ]; then echo "$$page: mandoc:"; echo "$$out"; exit 1; fi; \
	    fi; \
	    if command -v man >/dev/null 2>&1; then \
	        out=$$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z $$page 2>&1 >/dev/null); \
	        if [ -n "$$out" ]; then echo "$$page: man --warnings:"; echo "$$out"; exit 1; fi; \
	    fi; \
	    LC_ALL=C.UTF-8 groff -man -Tutf8 -P-cbou -rLL=78n $$page >$$page.txt; \
	    echo "$$page.txt"; \
	done

install: all $(MAN_OUT)
	install -d $(DESTDIR)$(PKGLIBDIR) $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7
	install -m 0644 $(BUILD)/libpqshim.so $(DESTDIR)$(PKGLIBDIR)/libpqshim.so
	install -m 0755 $(BUILD)/pqshim $(DESTDIR)$(PREFIX)/bin/pqshim
	install -m 0755 $(BUILD)/pqshimctl $(DESTDIR)$(PREFIX)/bin/pqshimctl
	install -m 0644 $(filter %.1,$(MAN_OUT)) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(filter %.7,$(MAN_OUT)) $(DESTDIR)$(MANDIR)/man7/

uninstall:
	rm -f $(DESTDIR)$(PKGLIBDIR)/libpqshim.so $(DESTDIR)$(PREFIX)/bin/pqshim \
	    $(DESTDIR)$(PREFIX)/bin/pqshimctl \
	    $(patsubst man/%.1,$(DESTDIR)$(MANDIR)/man1/%.1,$(filter %.1,$(MAN_SRC))) \
	    $(patsubst man/%.7,$(DESTDIR)$(MANDIR)/man7/%.7,$(filter %.7,$(MAN_SRC)))
	-rmdir $(DESTDIR)$(PKGLIBDIR) 2>/dev/null

# A Debian package, built by dpkg-buildpackage in a copy of the source tree
# under $(BUILD)/deb (dpkg-buildpackage writes next to the tree it builds);
# the .deb ends up in $(BUILD), everything else is removed. Without
# DEB_BUILD_OPTIONS: every core, no -dbgsym package.
DEB_WORK := $(BUILD)/deb
deb:
	@command -v dpkg-buildpackage >/dev/null 2>&1 && command -v dh >/dev/null 2>&1 || { \
	    echo "make deb: needs dpkg-buildpackage and debhelper (apt-get install dpkg-dev debhelper)"; \
	    exit 1; }
	@set -e; rm -rf $(DEB_WORK); mkdir -p $(DEB_WORK)/pqshim-$(VERSION); \
	tar -c --exclude=./build --exclude=./$(BUILD) --exclude=./.git --exclude=./tmp \
	    --exclude=__pycache__ --exclude=./debian/build --exclude=./debian/pqshim \
	    --exclude=./debian/.debhelper --exclude=./debian/files \
	    --exclude='./debian/*.substvars' --exclude=./debian/debhelper-build-stamp \
	    -f - . | tar -x -C $(DEB_WORK)/pqshim-$(VERSION); \
	echo "dpkg-buildpackage -us -uc -b (in $(DEB_WORK)/pqshim-$(VERSION), log $(BUILD)/deb.log)"; \
	if ! (cd $(DEB_WORK)/pqshim-$(VERSION) && \
	      env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
	          DEB_BUILD_OPTIONS="$${DEB_BUILD_OPTIONS:-parallel=$$(nproc) noddebs}" \
	          dpkg-buildpackage -us -uc -b) >$(BUILD)/deb.log 2>&1; then \
	    tail -n 40 $(BUILD)/deb.log; echo "make deb: dpkg-buildpackage failed"; exit 1; \
	fi; \
	rm -f $(BUILD)/pqshim_*.deb; \
	mv $(DEB_WORK)/pqshim_$(VERSION)_*.deb $(BUILD)/; \
	rm -rf $(DEB_WORK); \
	echo "make deb: $$(ls $(BUILD)/pqshim_$(VERSION)_*.deb)"

clean:
	rm -rf build


FORCE:

.PHONY: callgraph check-valgrind bench all compat deps check check-asan check-tsan demo install uninstall clean test-build fuzz fuzz-identity \
        man deb FORCE
