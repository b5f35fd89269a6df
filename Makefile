# ipsecpath — build, test, demo. `make demo` and `make test` install what they need.
GO        ?= go
BIN       := bin/ipsecpath
PKGS      := ./...
FUZZTIME  ?= 10000x
# Debian packages the lab, the tests and the benchmarks use. libstrongswan-standard-plugins
# (the openssl plugin charon loads) is only a Recommends of libstrongswan: name it.
DEB_PKGS  := strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins \
             libstrongswan-extra-plugins nftables iproute2 tcpdump tshark iputils-ping \
             netcat-openbsd openssl ike-scan scamper hping3 iputils-tracepath traceroute \
             chromium prometheus tinyproxy conntrack
STATICCHECK_VERSION ?= v0.8.2
GOBIN     := $(shell $(GO) env GOPATH)/bin

.PHONY: all build deps go-deps test unit lint fuzz bench demo lab-up lab-down clean

all: build

build: go-deps
	$(GO) build -o $(BIN) ./cmd/ipsecpath

# deps installs the Debian packages that are missing (as root, with apt-get).
deps:
	@scripts/deps.sh $(DEB_PKGS)

go-deps:
	$(GO) mod download

$(GOBIN)/staticcheck:
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# test runs every test: formatting, vet, staticcheck, the unit and lab tests, and each fuzz
# target for $(FUZZTIME) inputs. Lab and raw-socket tests need root; under CI=true they never skip.
test: deps go-deps lint unit fuzz

unit: build
	$(GO) test -count=1 -timeout 15m $(PKGS)

lint: $(GOBIN)/staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GOBIN)/staticcheck $(PKGS)

fuzz:
	@scripts/fuzz-all.sh $(FUZZTIME)

bench: build deps
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	@for s in bench/*.sh; do [ -x "$$s" ] && { echo "== $$s"; "$$s" || exit 1; }; done; true

# demo: a lab whose path drops IP fragments, a full check against it, the report, teardown.
demo: deps build
	$(BIN) lab demo

lab-up: deps build
	$(BIN) lab up --profile $${PROFILE:-clean} --name $${NAME:-dev}

lab-down: build
	$(BIN) lab down $${NAME:-dev}

clean:
	rm -rf bin
