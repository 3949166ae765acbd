# dns-tuner. `make test` is what CI runs; it installs and builds what it needs.
SHELL := /usr/bin/env bash
export GOTOOLCHAIN := local

ENVTEST_DIR = $(shell hack/build-envtest.sh --print-dir)
GOLANGCI_LINT_VERSION ?= v2.15.0
GO_TEST_FLAGS ?= -count=1 -timeout 30m

.PHONY: all build test unit lint fmt vet deps envtest tools render-check demo lab bench clean

all: build

build: ## Build bin/dns-tuner (the same line as the Dockerfile)
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/dns-tuner ./cmd/dns-tuner

deps: ## System packages for the tests (gcc, musl-gcc, unshare)
	hack/deps.sh

envtest: ## kube-apiserver and etcd, built from the Go module proxy once
	hack/build-envtest.sh >/dev/null

tools: ## helm, kustomize, kubeconform from the Go module proxy
	hack/tools.sh

test: deps envtest tools vet fmt build ## Everything: unit, envtest, real resolvers, registry, deployment checks
	KUBEBUILDER_ASSETS=$(ENVTEST_DIR) go test $(GO_TEST_FLAGS) ./...
	hack/render-check.sh

unit: ## Fast tests only (no control plane)
	go test -short ./internal/mutate/... ./internal/policy/... ./internal/resolvconf/...

vet:
	go vet ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

lint: ## golangci-lint, built from the Go module proxy
	@[[ -x bin/golangci-lint && "$$(cat bin/.golangci-lint.version 2>/dev/null)" == $(GOLANGCI_LINT_VERSION) ]] || \
	  { GOBIN=$$PWD/bin go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) && echo $(GOLANGCI_LINT_VERSION) > bin/.golangci-lint.version; }
	bin/golangci-lint run ./...

render-check: tools ## helm lint/template and kustomize renders
	hack/render-check.sh

demo: envtest deps ## Local control plane + registry + sample workloads, then keep serving
	go run ./hack/demo

lab: deps ## DNS race lab on the real glibc, musl and Go resolvers (root)
	go run ./hack/dnslab -format markdown

bench: envtest ## Benchmarks quoted in the README
	go test -run '^$$' -bench BenchmarkAdmission -benchtime 5000x ./webhook/
	go test -run '^$$' -bench . -benchmem ./internal/mutate/ ./internal/inspect/ ./internal/verdicts/

clean:
	rm -rf bin/dns-tuner
