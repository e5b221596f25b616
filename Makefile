# flagwatch — `make run` and `make test` do everything on a fresh Debian machine.
SWIFT ?= swift
PYTHON ?= python3
DEBUG_BIN := .build/debug/flagwatch
RELEASE_BIN := .build/release/flagwatch
FUZZ_SECONDS ?= 60

.PHONY: all build release run test unit-test e2e-test fuzz bench benchmarks deps test-deps clean \
        install install-files uninstall

all: build

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test

build: deps
	$(SWIFT) build --product flagwatch

# The binary to install: the Swift runtime linked in (nodes have no Swift toolchain), which also
# keeps the daemon's resident memory down (24 vs 30 MiB with 1,000 clusters, see docs/performance.md).
# The linker's map (.build/flagwatch-release.map) feeds scripts/binary-composition.py: what the
# binary is made of (README, "The container image").
release: deps
	@mkdir -p .build  # the linker writes the map before SwiftPM has made .build/release on a fresh clone
	$(SWIFT) build -c release --product flagwatch --static-swift-stdlib -Xlinker -Map=$(CURDIR)/.build/flagwatch-release.map

# The container image for the DaemonSet (deploy/kubernetes): the stripped release binary and the
# shipped default config on BASE (Containerfile). CONTAINER_TOOL may carry arguments, e.g.
# CONTAINER_TOOL="podman --runtime runc". The build context is only .build/image-context.
VERSION := $(shell sed -n 's/.*static let version = "\(.*\)".*/\1/p' Sources/flagwatch/Flagwatch.swift)
IMAGE ?= flagwatch:$(VERSION)
BASE ?= docker.io/library/debian:bookworm-slim
CONTAINER_TOOL ?= $(shell if command -v podman >/dev/null 2>&1; then echo podman; elif command -v docker >/dev/null 2>&1; then echo docker; fi)
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
IMAGE_SOURCE ?= $(shell git config --get remote.origin.url 2>/dev/null || echo unknown)
IMAGE_LICENSES ?= NOASSERTION
IMAGE_CONTEXT := .build/image-context

.PHONY: image
image: release
	@[ -n "$(CONTAINER_TOOL)" ] || { echo "make image: neither podman nor docker is installed; set CONTAINER_TOOL" >&2; exit 1; }
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)
	strip --strip-all -o $(IMAGE_CONTEXT)/flagwatch $(RELEASE_BIN)
	install -m 0644 config/flagwatch.yaml $(IMAGE_CONTEXT)/flagwatch.yaml
	$(CONTAINER_TOOL) build --file Containerfile --tag "$(IMAGE)" \
	  --build-arg BASE="$(BASE)" --build-arg VERSION="$(VERSION)" --build-arg REVISION="$(IMAGE_REVISION)" \
	  --build-arg SOURCE="$(IMAGE_SOURCE)" --build-arg LICENSES="$(IMAGE_LICENSES)" \
	  $(IMAGE_CONTEXT)
	@echo "built $(IMAGE) on $(BASE)"

# Install as a systemd service (see systemd/README.md): `sudo make install`, then
# `systemctl enable --now flagwatch` (or flagwatch.socket for socket activation).
# install-files installs an existing binary (FLAGWATCH_BIN, default the release build) without
# building. The units' ExecStart/ExecStartPre are rewritten to $(BINDIR) and $(SYSCONFDIR); an
# existing $(SYSCONFDIR)/flagwatch/flagwatch.yaml is never overwritten. With DESTDIR set (staging,
# packaging) systemctl is not called.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSTEMCTL ?= systemctl
FLAGWATCH_BIN ?= $(RELEASE_BIN)
UNITS := flagwatch.service flagwatch.socket
CONFIG_DEST = $(DESTDIR)$(SYSCONFDIR)/flagwatch/flagwatch.yaml
# systemctl only for a real install on a machine running systemd.
SYSTEMD_RUNNING = [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]

install: release
	$(MAKE) --no-print-directory install-files FLAGWATCH_BIN=$(CURDIR)/$(RELEASE_BIN)

install-files:
	@[ -x "$(FLAGWATCH_BIN)" ] || { echo "install-files: no executable at FLAGWATCH_BIN=$(FLAGWATCH_BIN) (run make release, or make install)" >&2; exit 1; }
	install -D -m 0755 "$(FLAGWATCH_BIN)" "$(DESTDIR)$(BINDIR)/flagwatch"
	@set -e; for unit in $(UNITS); do \
	  tmp=$$(mktemp); \
	  sed -e 's|/usr/local/bin/flagwatch|$(BINDIR)/flagwatch|g' \
	      -e 's|/etc/flagwatch/|$(SYSCONFDIR)/flagwatch/|g' "systemd/$$unit" > "$$tmp"; \
	  echo "install -D -m 0644 systemd/$$unit $(DESTDIR)$(SYSTEMDUNITDIR)/$$unit"; \
	  install -D -m 0644 "$$tmp" "$(DESTDIR)$(SYSTEMDUNITDIR)/$$unit"; \
	  rm -f "$$tmp"; \
	done
	@if [ -e "$(CONFIG_DEST)" ]; then \
	  echo "keeping the existing $(CONFIG_DEST) (the shipped default is config/flagwatch.yaml)"; \
	else \
	  echo "install -D -m 0644 config/flagwatch.yaml $(CONFIG_DEST)"; \
	  install -D -m 0644 config/flagwatch.yaml "$(CONFIG_DEST)"; \
	fi
	@if $(SYSTEMD_RUNNING); then echo "$(SYSTEMCTL) daemon-reload"; $(SYSTEMCTL) daemon-reload; fi
	@echo "installed; start with: systemctl enable --now flagwatch.service (or flagwatch.socket)"

# Stops and disables the units (real install only), removes the binary and the units, and the
# config only if it is still the shipped default. The state (/var/lib/private/flagwatch) is kept.
uninstall:
	@if $(SYSTEMD_RUNNING); then \
	  echo "$(SYSTEMCTL) disable --now $(UNITS)"; $(SYSTEMCTL) disable --now $(UNITS) || true; \
	fi
	rm -f "$(DESTDIR)$(BINDIR)/flagwatch"
	rm -f $(addprefix "$(DESTDIR)$(SYSTEMDUNITDIR)/,$(addsuffix ",$(UNITS)))
	@if [ -e "$(CONFIG_DEST)" ]; then \
	  if cmp -s config/flagwatch.yaml "$(CONFIG_DEST)"; then \
	    echo "rm -f $(CONFIG_DEST)"; rm -f "$(CONFIG_DEST)"; rmdir "$(DESTDIR)$(SYSCONFDIR)/flagwatch" 2>/dev/null || true; \
	  else \
	    echo "keeping $(CONFIG_DEST): it differs from the shipped default"; \
	  fi; \
	fi
	@if $(SYSTEMD_RUNNING); then echo "$(SYSTEMCTL) daemon-reload"; $(SYSTEMCTL) daemon-reload; fi

# The daemon on the shipped default config, plus a demo log it appends real Envoy lines to.
run: build
	FLAGWATCH_BIN=$(DEBUG_BIN) scripts/run-demo.sh

test: test-deps lint
	$(SWIFT) build --build-tests
	$(SWIFT) test
	Fuzz/run.sh $(FUZZ_SECONDS)
	FLAGWATCH_BIN=$(CURDIR)/$(DEBUG_BIN) $(PYTHON) -m pytest -q Tests/EndToEnd

unit-test:
	$(SWIFT) test

e2e-test: build test-deps
	FLAGWATCH_BIN=$(CURDIR)/$(DEBUG_BIN) $(PYTHON) -m pytest -q Tests/EndToEnd

fuzz:
	Fuzz/run.sh $(FUZZ_SECONDS)

# scan vs wc -l on a generated 5M-line (1.8 GB) Istio log: the ratio quoted in docs/performance.md.
bench: release
	FLAGWATCH_BIN=$(CURDIR)/$(RELEASE_BIN) Benchmarks/scripts/scan-vs-wc.sh

# scan --follow while 1 M Istio lines/s are appended for 30 s: lag, CPU, peak RSS, then idle CPU.
.PHONY: bench-follow
bench-follow: release
	FLAGWATCH_BIN=$(CURDIR)/$(RELEASE_BIN) $(PYTHON) Benchmarks/scripts/follow_bench.py

# The same with the daemon (flagwatch run), /metrics scraped every 0.25 s; idle without scrapes.
.PHONY: bench-daemon
bench-daemon: release
	FLAGWATCH_BIN=$(CURDIR)/$(RELEASE_BIN) $(PYTHON) Benchmarks/scripts/follow_bench.py --mode daemon

# Entries/s per core of a grpc_access_log source, the whole path (HTTP/2, handoff, decode, count).
.PHONY: bench-receiver
bench-receiver: release
	FLAGWATCH_BIN=$(CURDIR)/$(RELEASE_BIN) $(PYTHON) Benchmarks/scripts/receiver_bench.py

# Parser throughput and allocations per line (ordo-one/benchmark).
benchmarks: deps
	Benchmarks/run.sh

# The Swift files swift-format owns (its configuration: .swift-format).
SWIFT_FORMAT_PATHS := Sources Tests Package.swift Benchmarks/Package.swift Benchmarks/Benchmarks Fuzz/FuzzParser.swift

# Rewrites the Swift files in the project's format (swift format ships with the toolchain).
.PHONY: format
format:
	$(SWIFT) format --in-place --recursive --parallel $(SWIFT_FORMAT_PATHS)

# Checks that change nothing: the format (any difference fails) and every import pointing
# upstream (docs/architecture.md). Part of make test.
.PHONY: lint
lint:
	$(SWIFT) format lint --strict --recursive --parallel $(SWIFT_FORMAT_PATHS)
	$(PYTHON) scripts/check-module-order.py

clean:
	rm -rf .build .fuzz
