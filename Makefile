# vmfs: build, test, demo. `make demo` and `make test` install the system
# packages they need when run as root (Debian 12).

GO       ?= go
BIN      := bin/vmfs
PKGS     := ./...
APT_PKGS := fuse3 qemu-utils qemu-system-x86 ovmf libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system \
            libvirt-clients libxml2-utils syslinux syslinux-common syslinux-efi mtools dosfstools \
            fdisk busybox-static cpio xz-utils zstd time nasm util-linux tar man-db xfsprogs btrfs-progs libnbd-bin \
            curl qemu-block-extra procps virt-v2v nbdkit libguestfs-tools debootstrap linux-image-amd64
BENCH_PKGS := xmount libvmdk-utils

export PATH := /usr/local/go/bin:$(PATH)

# VERSION is what `vmfs --version` says (main.buildVersion, set at link time).
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -modified)
LDFLAGS  := -X main.buildVersion=$(VERSION) -X main.buildCommit=$(COMMIT)

.PHONY: all build man test test-short test-convert demo deps bench-deps fuzz soak bench bench-live bench-convert vet clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vmfs

# man writes the manual page, generated from the command definitions
# (read it with man -l bin/vmfs.1).
man: build
	$(BIN) man > bin/vmfs.1

# deps installs what the tests and the demo need, when run as root.
deps:
	@scripts/install-deps.sh $(APT_PKGS)

bench-deps:
	@scripts/install-deps.sh $(APT_PKGS) $(BENCH_PKGS)

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# test: unit tests, real-tool oracles, fuzz seeds, mounts and guest boots.
# As root, libvirtd and virtlogd are started first when they do not answer
# (as .ci/run does), so that the test processes share daemons none of them
# owns: one that started them would stop them at its exit under another's
# domain.
test: deps build vet
	@[ "$$(id -u)" != 0 ] || scripts/libvirt-up.sh
	$(GO) test -timeout 30m -count=1 $(PKGS)

# test-convert: vmfs convert of a real Debian 12 guest built with debootstrap
# (testdata/convert-guest, cached), booted before and after (internal/convert).
test-convert: deps build
	VMFS_TEST_CONVERT=1 $(GO) test -timeout 60m -count=1 -run TestConvertDebianGuest -v ./internal/convert/

test-short: build
	$(GO) test -short -count=1 $(PKGS)

demo: deps build
	testdata/demo/demo.sh

# fuzz runs every fuzz target for FUZZTIME each (default 1m).
FUZZTIME ?= 1m
fuzz:
	@scripts/fuzz-all.sh $(FUZZTIME)

soak: deps build
	VMFS_SOAK=1 $(GO) test -timeout 60m -count=1 -run Soak ./internal/e2e/...

# bench: Go benchmarks of the hot paths, then vmfs next to its peers on the
# same images in one run (internal/bench; see docs/benchmarks.md).
bench: bench-deps build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 300ms -count=1 ./layouts/...
	VMFS_BENCH=1 VMFS_BENCH_RAND=$${VMFS_BENCH_RAND:-500ms} $(GO) test -timeout 30m -count=1 -run Bench -v ./internal/bench/...

# bench-live: a live cutover of a 1 GiB disk holding 512 MiB next to stop +
# materialize + start of the same VM: times and the guest's downtime.
bench-live: deps build
	VMFS_BENCH_LIVE=1 $(GO) test -timeout 30m -count=1 -run BenchLive -v ./internal/bench/...

# bench-convert: each stage of vmfs convert of that guest next to virt-v2v's
# copying conversion of the same VM (-o local).
bench-convert: deps build
	VMFS_BENCH_CONVERT=1 $(GO) test -timeout 90m -count=1 -run TestBenchConvert -v ./internal/convert/

clean:
	rm -rf bin
