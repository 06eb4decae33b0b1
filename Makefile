# anycast-watchdog. `make test` is what CI runs (as root, through .ci/run).
# The version is the VERSION file's (also the .deb's); override with VERSION=.
VERSION ?= $(shell cat VERSION)
GO      ?= go
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build test unit unit-arm64 capture-frr10 fuzz fuzz-short integration demo deps-lab deps-test bench-checks bench-failover deb lint-deb lint-rules bench-load bench-exec clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o anycast-watchdog .

## test: vet, the unit tier with the race detector, the package lint, then the
## integration tier (it needs root and skips itself without it). It installs
## the Debian packages it needs first, when they are missing.
test: deps-test
	$(MAKE) unit unit-arm64 fuzz-short lint-deb lint-rules integration

unit:
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(GO) test -race -count=1 ./...

## unit-arm64: the unit tier cross-built for arm64 and run under qemu-user
## (Debian's qemu-user; without the race detector, which does not run
## emulated). Helper processes go through the emulator too (internal/helperproc).
unit-arm64:
	GOARCH=arm64 AW_TEST_EMULATOR=qemu-aarch64 $(GO) test -count=1 -exec qemu-aarch64 ./...

integration:
	$(GO) test -tags integration -count=1 -timeout 45m -v ./integration/...

## capture-frr10: the frr and doctor packages' fixtures captured from Debian
## 13's FRR 10.3 (root; in the cached Debian 13 root) into frr/testdata/frr10
## and doctor/testdata/frr10.
capture-frr10:
	AW_CAPTURE_FRR10=$(CURDIR)/frr/testdata/frr10 AW_CAPTURE_DOCTOR_FRR10=$(CURDIR)/doctor/testdata/frr10 $(GO) test -tags integration -count=1 -run '^TestCaptureFRR10$$' -v ./integration

## fuzz: every parser of outside input, FUZZTIME each (make fuzz-short: 100 000 inputs
## each; a count, not a duration: Go 1.26's fuzz coordinator can fail a duration run
## at its end with a bare "context deadline exceeded", golang/go#75804).
FUZZ_TARGETS := ./config:FuzzParse ./ifaddr:FuzzParseShow ./frr:FuzzParseRouterLSDB ./frr:FuzzParseOSPF6LSDB ./frr:FuzzParseBGP
FUZZTIME ?= 5m
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "== $$t ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}" || exit 1; \
	done

fuzz-short:
	$(MAKE) fuzz FUZZTIME=100000x

## demo: the main job on a built-in lab (root; installs what it needs);
## PROTOCOL=bgp tells the same story on BGP (used by bench-failover too).
PROTOCOL ?= ospf
demo: build deps-lab
	$(GO) run ./integration/demo --binary ./anycast-watchdog -protocol $(PROTOCOL)

## deps-lab / deps-test: install with apt-get the Debian packages that the
## demo / the whole suite need, only those missing (root needed only then).
LAB_PACKAGES  := frr dnsmasq-base iproute2
TEST_PACKAGES := $(LAB_PACKAGES) bind9-dnsutils unbound lintian debootstrap systemd-container prometheus qemu-user
deps-lab:
	@./packaging/install-missing $(LAB_PACKAGES)
deps-test:
	@./packaging/install-missing $(TEST_PACKAGES)

## bench-checks: 200 services x 5 checks for 60 s; prints checks/s, CPU, RSS, lateness,
## and the CPU per check of the same checks run alone beside the daemon's.
bench-checks:
	$(GO) run ./bench/checks

## bench-exec (root): the shipped binary (make build, as the .deb builds it), run
## as its own process in a network namespace with SERVICES exec checks of
## /bin/true every INTERVAL, against bench/execref (a plain Go checker) in
## PAIRS alternating pairs of DURATION phases; prints CPU per check (self and
## children), context switches, RSS, starved and timed-out checks, and the
## median ratio. SOAK=10m runs the daemon alone from its start that long and
## counts starved and timed-out checks (SERVICES=500 INTERVAL=10s SOAK=10m).
## `go run ./bench/checks -exec` measures the supervisor alone.
SERVICES ?= 50,500
INTERVAL ?= 1s
PAIRS ?= 5
DURATION ?= 20s
SOAK ?= 0s
bench-exec: build
	$(GO) run ./bench/exec -binary ./anycast-watchdog -services $(SERVICES) -interval $(INTERVAL) -pairs $(PAIRS) -duration $(DURATION) -soak $(SOAK)

## bench-load: 500 services x 3 checks at 500 ms for 10 minutes: flat is the goal.
bench-load:
	$(GO) run ./bench/checks -services 500 -checks 3 -interval 500ms -duration 10m

## bench-failover: TRIALS break/repair trials on the FRR lab (root); prints
## detection, propagation, total, floor, total-floor and lost queries at QPS.
## TRIAL=drain drains and undrains instead and counts the queries lost;
## LAST_RESORT=false runs the lab without last-resort interfaces (remove first);
## PROTOCOL=bgp runs it on BGP (an eBGP upstream, docs/bgp.md's recipe);
## FRR=10 runs it on Debian 13's FRR 10.3, in a chroot of its root.
## TRIAL=stale6 counts stale OSPFv3 next hops after each kind of withdrawal
## (no daemon; `go run ./bench/failover -h` for -delays and -fresh);
## TRIAL=steady measures a steady fleet's vtysh calls and ospfd CPU per node
## and minute (NODES=16 ROUTERS=2: the fleet lab).
FRR ?= host
TRIALS ?= 20
TRIAL ?= break
QPS ?= 100
LAST_RESORT ?= true
NODES ?= 2
ROUTERS ?= 1
bench-failover: build deps-lab
	$(GO) run ./bench/failover -binary ./anycast-watchdog -protocol $(PROTOCOL) -trials $(TRIALS) -trial $(TRIAL) -qps $(QPS) -last-resort=$(LAST_RESORT) -frr $(FRR) -nodes $(NODES) -routers $(ROUTERS)

## deb: dist/anycast-watchdog_$(VERSION)-$(DEB_REVISION)_$(ARCH).deb (static,
## stripped, -trimpath binary); ARCH=arm64 cross-builds the arm64 package.
DEB_REVISION ?= 1
ARCH ?= amd64
deb_for = dist/anycast-watchdog_$(VERSION)-$(DEB_REVISION)_$(1).deb
DEB = $(call deb_for,$(ARCH))
deb:
	mkdir -p dist/$(ARCH)
	CGO_ENABLED=0 GOARCH=$(ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/$(ARCH)/anycast-watchdog .
	packaging/deb/build.sh $(VERSION)-$(DEB_REVISION) dist/$(ARCH)/anycast-watchdog $(DEB)

## lint-deb: lintian must report no error and no warning on the amd64 and
## the arm64 package, the arm64 binary must run (under qemu-user) and accept
## the shipped configuration, and the unit's hardening must score 2.0 or better.
lint-deb:
	$(MAKE) deb ARCH=amd64
	$(MAKE) deb ARCH=arm64
	lintian --fail-on error,warning --info $(call deb_for,amd64) $(call deb_for,arm64)
	qemu-aarch64 dist/arm64/anycast-watchdog check-config --config packaging/deb/config.yaml
	systemd-analyze security --offline=true --threshold=20 packaging/deb/anycast-watchdog.service >/dev/null

## lint-rules: the Prometheus alert rules the .deb ships are valid, and every
## alert fires and stays quiet as its promtool unit tests say.
lint-rules:
	promtool check rules packaging/prometheus/anycast-watchdog.rules.yml
	cd packaging/prometheus && promtool test rules anycast-watchdog.rules.test.yml

clean:
	rm -rf anycast-watchdog dist
