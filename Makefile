# SPDX-License-Identifier: GPL-3.0-only
# xcsave — top-level build. `make demo` runs the main job, `make check` the tests.
# Both install (as root) or ask for (otherwise) their Debian packages first.

PREFIX  ?= /usr/local
DESTDIR ?=
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
BUILD   := $(CURDIR)/build
CARGO   ?= cargo
CC      ?= gcc
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml 2>/dev/null | head -1)

export XCSAVE_BUILD := $(BUILD)

.PHONY: all deps lib lib-test xensim tests check check-rust check-c check-header check-install \
        check-shipped demo bench check-leaks check-xen soak install uninstall clean

all: lib xensim

deps:
	@bash scripts/install-deps.sh

# The Rust crate, then the shared object with our version script and SONAME: the shipped
# library (`make install` installs it; bench, demo and check-xen measure it).
lib:
	$(CARGO) build --release
	@mkdir -p $(BUILD)/lib
	bash scripts/link-so.sh $(BUILD)/lib

# The C suite's library: the same code plus XCSAVE_TEST_* fault injection (cargo feature
# fault-injection), built in its own target dir so that it never replaces the shipped one.
TEST_TARGET := $(CURDIR)/target/fault-injection
lib-test:
	$(CARGO) build --release --features fault-injection --target-dir $(TEST_TARGET)
	@mkdir -p $(BUILD)/lib-test
	bash scripts/link-so.sh $(BUILD)/lib-test $(TEST_TARGET)/release/libxcsave.a

xensim:
	$(MAKE) -C c-tests/xensim BUILD=$(BUILD)

tests: lib lib-test xensim
	$(MAKE) -C c-tests BUILD=$(BUILD) all

check-rust:
	bash scripts/check-layers.sh
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	$(CARGO) test --release

check-header: lib
	bash scripts/check-header.sh

# The shipped library carries no fault injection (and the test library does: the check can fail).
check-shipped: lib lib-test
	bash scripts/check-shipped.sh $(BUILD)/lib/libxcsave.so.0 $(BUILD)/lib-test/libxcsave.so.0

# make install into a temporary DESTDIR, then build and run a program against the installed copy.
check-install: lib
	bash scripts/check-install.sh

# T=name runs one C test (e.g. `make check-c T=test_sim_roundtrip`).
check-c: tests
	$(MAKE) -C c-tests BUILD=$(BUILD) check T="$(T)"

# The whole suite, as CI runs it: Rust checks, header freshness, every C test on xensim, and
# 1,000 saves under LeakSanitizer.
check: deps
	$(MAKE) check-rust
	$(MAKE) check-header
	$(MAKE) check-shipped
	$(MAKE) check-install
	$(MAKE) check-c
	$(MAKE) check-leaks

demo: deps lib xensim
	$(MAKE) -C c-tests BUILD=$(BUILD) demo

bench: deps lib xensim
	$(MAKE) -C c-tests BUILD=$(BUILD) bench

check-leaks: deps lib lib-test xensim
	$(MAKE) -C c-tests BUILD=$(BUILD) check-leaks

soak: deps lib xensim
	$(MAKE) -C c-tests BUILD=$(BUILD) soak

check-xen: lib
	bash scripts/check-xen.sh

install: lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 0755 $(BUILD)/lib/libxcsave.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libxcsave.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libxcsave.so.0
	ln -sf libxcsave.so.0 $(DESTDIR)$(LIBDIR)/libxcsave.so
	install -m 0644 $(BUILD)/lib/libxcsave.a $(DESTDIR)$(LIBDIR)/
	install -m 0644 include/xcsave.h $(DESTDIR)$(INCDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' xcsave.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/xcsave.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libxcsave.so* $(DESTDIR)$(LIBDIR)/libxcsave.a \
	      $(DESTDIR)$(INCDIR)/xcsave.h $(DESTDIR)$(LIBDIR)/pkgconfig/xcsave.pc

clean:
	rm -rf $(BUILD)
	$(CARGO) clean
