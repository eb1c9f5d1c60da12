# SPDX-License-Identifier: GPL-3.0-only
# xcsave — top-level build. `make demo` runs the main job, `make check` the tests.
# Both install (as root) or ask for (otherwise) their Debian packages first.

PREFIX  ?= /usr/local
DESTDIR ?=
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
CARGO   ?= cargo
CC      ?= gcc
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml 2>/dev/null | head -1)

# The Xen release to build for: the installed headers' (pkg-config), or `make XEN=4.20`
# (build.rs refuses an XEN the installed headers contradict). 4.17 builds in target/ and build/
# as always; another release in target/xen-$(XEN) and build/xen-$(XEN), because xenctrl-sys
# does not regenerate its bindings when the headers change.
XEN_INSTALLED := $(shell pkg-config --modversion xenguest 2>/dev/null | cut -d. -f1,2)
XEN     ?= $(XEN_INSTALLED)
ifeq ($(XEN),4.17)
BUILD   := $(CURDIR)/build
export CARGO_TARGET_DIR := $(CURDIR)/target
else
BUILD   := $(CURDIR)/build/xen-$(XEN)
export CARGO_TARGET_DIR := $(CURDIR)/target/xen-$(XEN)
endif
# Where xen-utils-$(XEN) is unpacked (verify-stream-v2, libxl-save-helper): build/deps on the
# host (scripts/install-deps.sh), /xcsave-deps in a Debian root (scripts/debian-root.sh).
XEN_UTILS ?= $(CURDIR)/build/deps/xen-utils

export XCSAVE_BUILD := $(BUILD)
export XCSAVE_XEN_VERSION := $(XEN)
export XCSAVE_XEN_UTILS := $(XEN_UTILS)

.PHONY: all deps lib lib-test xensim tests check check-rust check-c check-header check-install \
        check-shipped demo bench check-leaks check-xen soak install uninstall clean root-trixie \
        check-420 check-420-inside deb check-deb install-xl

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
TEST_TARGET := $(CARGO_TARGET_DIR)/fault-injection
lib-test:
	$(CARGO) build --release --features fault-injection --target-dir $(TEST_TARGET)
	@mkdir -p $(BUILD)/lib-test
	bash scripts/link-so.sh $(BUILD)/lib-test $(TEST_TARGET)/release/libxcsave.a

xensim:
	$(MAKE) -C c-tests/xensim BUILD=$(BUILD) XEN=$(XEN)

tests: lib lib-test xensim
	$(MAKE) -C c-tests BUILD=$(BUILD) XEN=$(XEN) all

check-rust:
	bash scripts/check-layers.sh
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	$(CARGO) test --release
	# The fuzz targets share the crate's testkit and readers: they must keep compiling.
	$(CARGO) fmt --check --manifest-path fuzz/Cargo.toml
	$(CARGO) check --manifest-path fuzz/Cargo.toml --bins

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
	$(MAKE) -C c-tests BUILD=$(BUILD) XEN=$(XEN) check T="$(T)"

# The whole suite, as CI runs it: Rust checks, header freshness, every C test on xensim, and
# 1,000 saves under LeakSanitizer.
check: deps
	$(MAKE) check-rust
	$(MAKE) check-header
	$(MAKE) check-shipped
	$(MAKE) check-install
	$(MAKE) check-c
	$(MAKE) check-leaks
	$(MAKE) check-deb
	$(MAKE) check-420

# Debian 13 (trixie) root from Debian's packages, cached in build/trixie (scripts/debian-root.sh).
TRIXIE := $(CURDIR)/build/trixie
root-trixie:
	bash scripts/debian-root.sh trixie $(TRIXIE)

# The suite again against Debian 13's real Xen 4.20 libraries and tools, in the Debian 13 root:
# the 4.20 build (target/xen-4.20, build/xen-4.20), clippy on its 4.20 code paths, the Rust unit
# tests built for 4.20 (abi::xen's facts, e.g. the 16-byte back-channel header), every C test
# with xensim simulating 4.20 and stock 4.20's save, restore, verify-stream-v2 and
# libxl-save-helper, and the leak check; then its Debian packages, installed, used and removed
# in a throwaway overlay of the root (scripts/check-deb.sh).
check-420: root-trixie
	bash scripts/in-root.sh $(TRIXIE) $(MAKE) XEN=4.20 check-420-inside
	bash scripts/check-deb.sh 4.20 $(TRIXIE) $(CURDIR)/build/xen-4.20/deb $(CURDIR)/build/xen-4.20

check-420-inside:
	@test "$(XEN)" = 4.20 || { echo "check-420-inside: runs in the Debian 13 root" >&2; exit 1; }
	$(CARGO) clippy --release --all-targets -- -D warnings
	$(CARGO) test --release
	$(MAKE) check-c
	$(MAKE) -C c-tests BUILD=$(BUILD) XEN=$(XEN) check-leaks
	$(MAKE) deb

demo: deps lib xensim
	$(MAKE) -C c-tests BUILD=$(BUILD) demo

bench: deps lib xensim
	$(MAKE) -C c-tests BUILD=$(BUILD) bench

check-leaks: deps lib lib-test xensim
	$(MAKE) -C c-tests BUILD=$(BUILD) check-leaks

soak: deps lib xensim
	$(MAKE) -C c-tests BUILD=$(BUILD) soak

# Real Xen under QEMU (docs/real-xen.md): Debian 12's 4.17 by default; `make check-xen XEN=4.20`
# boots Debian 13's 4.20 with the library built for it in the Debian 13 root.
ifeq ($(XEN),4.17)
check-xen: lib
else
check-xen: root-trixie
	bash scripts/in-root.sh $(TRIXIE) $(MAKE) XEN=$(XEN) lib
endif
	bash scripts/check-xen.sh

# Debian packages for this Xen release into build/deb (or build/xen-X/deb): libxcsave0,
# libxcsave-dev and the opt-in xcsave-xl (scripts/make-deb.sh).
deb: lib
	bash scripts/make-deb.sh $(XEN) $(BUILD) $(BUILD)/deb

# The one command that switches xl to xcsave on a Debian 12 or 13 Xen host (as root): build the
# packages for the installed Xen and install the library and the activation package with apt.
# `apt-get remove xcsave-xl` switches back to the stock helper.
install-xl: deb
	apt-get install -y $(BUILD)/deb/libxcsave0_*.deb $(BUILD)/deb/xcsave-xl_*.deb

# Install, use, remove the packages in a throwaway overlay of this host (scripts/check-deb.sh);
# check-420 does the same for Debian 13 over build/trixie.
check-deb: deb tests
	bash scripts/check-deb.sh $(XEN) / $(BUILD)/deb $(BUILD)

install: lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 0755 $(BUILD)/lib/libxcsave.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libxcsave.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libxcsave.so.0
	ln -sf libxcsave.so.0 $(DESTDIR)$(LIBDIR)/libxcsave.so
	install -m 0644 $(BUILD)/lib/libxcsave.a $(DESTDIR)$(LIBDIR)/
	install -m 0644 include/xcsave.h $(DESTDIR)$(INCDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@XEN@|$(XEN)|' xcsave.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/xcsave.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libxcsave.so* $(DESTDIR)$(LIBDIR)/libxcsave.a \
	      $(DESTDIR)$(INCDIR)/xcsave.h $(DESTDIR)$(LIBDIR)/pkgconfig/xcsave.pc

clean:
	rm -rf $(BUILD)
	$(CARGO) clean
