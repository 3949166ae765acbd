# dns-tuner. `make test` is what CI runs (.ci/run); it installs and builds what it needs.
# `make help` lists the targets. System packages come from `make deps` alone (apt-get, as
# root); every other target only builds into bin/ from the Go module proxy.
SHELL := /usr/bin/env bash
export GOTOOLCHAIN := local

ENVTEST_DIR = $(shell hack/build-envtest.sh --print-dir)
GOLANGCI_LINT_VERSION ?= v2.15.0
GO_TEST_FLAGS ?= -count=1 -timeout 30m

.DEFAULT_GOAL := build
.PHONY: help all build test unit e2e lint fmt vet deps envtest tools render-check demo lab bench loadtest clean

help: ## This list
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

all: build

build: ## Build bin/dns-tuner (the same line as the Dockerfile)
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/dns-tuner ./cmd/dns-tuner

deps: ## Install missing system packages (gcc, musl-tools, util-linux) with apt-get; needs root
	hack/deps.sh

envtest: ## kube-apiserver and etcd into bin/k8s: setup-envtest download, else built from the Go module proxy
	hack/build-envtest.sh >/dev/null

tools: ## helm, kustomize and CRDs into bin/, from the Go module proxy
	hack/tools.sh

test: deps envtest tools vet fmt build ## Everything CI runs: unit, envtest, real resolvers and images, deployment checks, the real cluster
	KUBEBUILDER_ASSETS=$(ENVTEST_DIR) go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v /test/cluster)
	hack/render-check.sh
	$(MAKE) e2e-cluster # test/cluster runs here, in the real cluster

unit: ## Fast tests: go test -short ./... (no control plane, no root, no image builds)
	go test -short ./...

e2e: envtest tools ## The envtest suites alone (test/e2e: admission and deployment through a real kube-apiserver)
	KUBEBUILDER_ASSETS=$(ENVTEST_DIR) go test $(GO_TEST_FLAGS) ./test/e2e/...

vet: ## go vet
	go vet ./...

fmt: ## Fail if a Go file needs gofmt
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

loadtest: envtest deps ## Pods through a real kube-apiserver: no webhook, a no-op webhook, dns-tuner serve, replays of its answer; CPU per pod; memory (about 4 minutes)
	KUBEBUILDER_ASSETS=$(ENVTEST_DIR) go run ./hack/loadtest

clean: ## Remove bin/dns-tuner
	rm -rf bin/dns-tuner

.PHONY: e2e-cluster demo-cluster
e2e-cluster: envtest tools ## Real single-node cluster in a network namespace (root): up, helm install, test/cluster, down
	hack/cluster/e2e.sh

demo-cluster: envtest tools ## The real cluster with dns-tuner and sample workloads; prints resolv.conf and lookup times until Ctrl-C
	hack/cluster/demo.sh
