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
                -Wl,-z,now $(SAN)
SHIM_LIBS := -ldl -lpthread -lm

SHIM_SRC := $(filter-out shim/dlsym.c,$(wildcard shim/*.c))
SHIM_OBJ := $(patsubst shim/%.c,$(BUILD)/obj/%.o,$(SHIM_SRC)) $(BUILD)/obj/dlsym.o
HEADERS  := $(wildcard shim/*.h)

all: $(BUILD)/libpqshim.so $(BUILD)/pqshim

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

test-build: all $(BUILD)/tests/unit $(TEST_PROGS) $(BUILD)/tests/libnextprobe.so

deps:
	@tests/lib/deps.sh

check: deps
	$(MAKE) test-build
	tests/run.sh

check-asan: deps
	$(MAKE) BUILD=build/asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test-build
	PQSHIM_SAN=asan BUILD=build/asan tests/run.sh

check-tsan: deps
	$(MAKE) BUILD=build/tsan SAN="-fsanitize=thread" test-build
	PQSHIM_SAN=tsan BUILD=build/tsan tests/run.sh

demo: deps
	$(MAKE) all $(TEST_PROGS)
	tools/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/lib/pqshim $(DESTDIR)$(PREFIX)/bin
	install -m 0644 $(BUILD)/libpqshim.so $(DESTDIR)$(PREFIX)/lib/pqshim/libpqshim.so
	install -m 0755 $(BUILD)/pqshim $(DESTDIR)$(PREFIX)/bin/pqshim

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/pqshim/libpqshim.so $(DESTDIR)$(PREFIX)/bin/pqshim
	-rmdir $(DESTDIR)$(PREFIX)/lib/pqshim 2>/dev/null

clean:
	rm -rf build

.PHONY: all deps check check-asan check-tsan demo install uninstall clean test-build
