# pqshim — connection policy for any libpq program, loaded with LD_PRELOAD.

PREFIX   ?= /usr/local
DESTDIR  ?=
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

SHIM_SRC := $(filter-out shim/dlsym.c,$(wildcard shim/*.c))
SHIM_OBJ := $(patsubst shim/%.c,$(BUILD)/obj/%.o,$(SHIM_SRC)) $(BUILD)/obj/dlsym.o
HEADERS  := $(wildcard shim/*.h)

all: $(BUILD)/libpqshim.so $(BUILD)/pqshim $(BUILD)/pqshimctl

$(BUILD)/obj/%.o: shim/%.c $(HEADERS) | $(BUILD)/obj
	$(CC) $(SHIM_CFLAGS) -c -o $@ $<

# The dlsym wrapper must pass lookups on as a tail call (see the file), so
# it is always optimised and never instrumented.
$(BUILD)/obj/dlsym.o: shim/dlsym.c $(HEADERS) | $(BUILD)/obj
	$(CC) -std=gnu11 $(WARN) -O2 -g -foptimize-sibling-calls -fPIC \
	    -fvisibility=hidden -I$(PG_INC) -c -o $@ $<

$(BUILD)/libpqshim.so: $(SHIM_OBJ) shim/libpqshim.map
	$(CC) $(SHIM_LDFLAGS) -o $@ $(SHIM_OBJ) $(SHIM_LIBS)

$(BUILD)/pqshim: tools/pqshim.c | $(BUILD)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) $(SAN) -o $@ $<

$(BUILD)/pqshimctl: tools/pqshimctl.c shim/control_path.c shim/control_path.h | $(BUILD)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) $(SAN) -o $@ tools/pqshimctl.c shim/control_path.c

$(BUILD) $(BUILD)/obj:
	mkdir -p $@

# ---- tests --------------------------------------------------------------

TEST_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) $(SAN) -I$(PG_INC) -Ishim
UNIT_SRC := $(wildcard tests/unit/*.c)
TEST_PROGS := $(patsubst tests/clients/%.c,$(BUILD)/tests/%,$(wildcard tests/clients/*.c))

$(BUILD)/tests:
	mkdir -p $@

$(BUILD)/tests/unit: $(UNIT_SRC) shim/config.c shim/log.c shim/target.c $(HEADERS) | $(BUILD)/tests
	$(CC) $(TEST_CFLAGS) -o $@ $(UNIT_SRC) shim/config.c shim/log.c shim/target.c \
	    -lpq -lpthread -lm

$(BUILD)/tests/%: tests/clients/%.c | $(BUILD)/tests
	$(CC) $(TEST_CFLAGS) -o $@ $< -lpq -lpthread

$(BUILD)/tests/libnextprobe.so: tests/lib/nextprobe.c | $(BUILD)/tests
	$(CC) -std=gnu11 $(WARN) -O2 -fPIC -shared -o $@ $< -ldl

$(BUILD)/tests/libswiftstub.so: tests/lib/asan_swift_stub.c | $(BUILD)/tests
	$(CC) -std=gnu11 $(WARN) -O2 -fPIC -shared -o $@ $<

test-build: all $(BUILD)/tests/unit $(TEST_PROGS) $(BUILD)/tests/libnextprobe.so \
            $(BUILD)/tests/libswiftstub.so

# libFuzzer targets (need clang): the control socket's request handling,
# and pqshimctl's handling of replies.
#   make fuzz && build/fuzz/fuzz_request -dict=tests/fuzz/request.dict
#                build/fuzz/fuzz_reply
FUZZ_CC    ?= clang
FUZZ_FLAGS := -std=gnu11 $(WARN) -g -O1 -fsanitize=fuzzer,address,undefined
# Every shim file but those that reach libpq or a server (the target stubs
# what the rest needs from conn.c, hooks.c and real.c).
FUZZ_SRC   := tests/fuzz/fuzz_request.c $(filter-out shim/conn.c shim/hooks.c shim/real.c \
              shim/dlsym.c shim/lifecycle.c shim/init.c shim/retry.c,$(wildcard shim/*.c))

fuzz:
	@if command -v $(FUZZ_CC) >/dev/null 2>&1; then \
	    mkdir -p $(BUILD)/fuzz && \
	    echo "$(FUZZ_CC) ... -o $(BUILD)/fuzz/fuzz_request" && \
	    $(FUZZ_CC) $(FUZZ_FLAGS) -I$(PG_INC) -Ishim -o $(BUILD)/fuzz/fuzz_request \
	        $(FUZZ_SRC) -lpthread -lm && \
	    echo "$(FUZZ_CC) ... -o $(BUILD)/fuzz/fuzz_reply" && \
	    $(FUZZ_CC) $(FUZZ_FLAGS) -o $(BUILD)/fuzz/fuzz_reply tests/fuzz/fuzz_reply.c \
	        shim/control_path.c; \
	else \
	    echo "make fuzz: $(FUZZ_CC) not found; install clang (e.g. apt-get install clang) and run it again"; \
	fi

deps:
	@tests/lib/deps.sh

ASAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# The whole suite, then the whole suite again with the shim and the test
# programs built under ASan + UBSan.
check: deps
	$(MAKE) test-build
	tests/run.sh
	$(MAKE) BUILD=build/asan SAN="$(ASAN)" test-build
	TEST_SANITIZER=asan BUILD=build/asan tests/run.sh

check-asan: deps
	$(MAKE) BUILD=build/asan SAN="$(ASAN)" test-build
	TEST_SANITIZER=asan BUILD=build/asan tests/run.sh

soak: test-build
	tests/soak.sh

check-valgrind: deps
	$(MAKE) test-build
	tests/valgrind.sh

check-tsan: deps
	$(MAKE) BUILD=build/tsan SAN="-fsanitize=thread" test-build
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

install: all
	install -d $(DESTDIR)$(PREFIX)/lib/pqshim $(DESTDIR)$(PREFIX)/bin
	install -m 0644 $(BUILD)/libpqshim.so $(DESTDIR)$(PREFIX)/lib/pqshim/libpqshim.so
	install -m 0755 $(BUILD)/pqshim $(DESTDIR)$(PREFIX)/bin/pqshim
	install -m 0755 $(BUILD)/pqshimctl $(DESTDIR)$(PREFIX)/bin/pqshimctl

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/pqshim/libpqshim.so $(DESTDIR)$(PREFIX)/bin/pqshim \
	    $(DESTDIR)$(PREFIX)/bin/pqshimctl
	-rmdir $(DESTDIR)$(PREFIX)/lib/pqshim 2>/dev/null

clean:
	rm -rf build


.PHONY: check-valgrind bench all compat deps check check-asan check-tsan demo install uninstall clean test-build fuzz
