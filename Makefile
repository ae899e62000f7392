# Portico: `make run` serves the example configuration on SQLite;
# `make test` installs the test peers and runs vet, staticcheck and the race-enabled tests.
GO        ?= go
BIN       := bin/portico
DATA      ?= .portico-data
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    := $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X github.com/portico-edge/portico/internal/app.Version=$(VERSION) -X github.com/portico-edge/portico/internal/app.Commit=$(COMMIT)
STATICCHECK := $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

.PHONY: build run test test-short fuzz bench clean deb container

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/portico

run: build
	$(BIN) serve --config examples/portico.yaml --data $(DATA)

test:
	scripts/install-test-deps.sh
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(GO) test -race -timeout 45m ./...
	scripts/fuzz-smoke.sh

test-short:
	$(GO) test -short ./...

# deb builds dist/portico_<version>_<arch>.deb (static binary, systemd unit,
# conffile, maintainer scripts) with dpkg-deb; docs/install.md describes it.
deb:
	VERSION=$(VERSION) packaging/deb/build.sh dist

# container builds the image portico:<version> (FROM scratch, static binary)
# with podman; docs/install.md describes it.
container:
	VERSION=$(VERSION) packaging/container/build.sh

fuzz:
	FUZZTIME=30s scripts/fuzz-smoke.sh

clean:
	rm -rf bin $(DATA)
