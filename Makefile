# labhook Makefile. Tools are pinned and installed with `go install` into ./bin.

CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.2
# helm is built from source through the Go module proxy (never downloaded
# as a binary), stamped as the release build stamps it: its version, and the
# Kubernetes version its client-go speaks, which `helm template` and `helm
# lint` check the chart's kubeVersion against.
HELM_VERSION ?= v3.22.0
HELM_K8S_MINOR ?= 37
ENVTEST_K8S_VERSION ?= 1.37.2

LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
IMG ?= ghcr.io/labhook/labhook:dev
GO_TEST_FLAGS ?=
FUZZTIME ?= 20s

export ENVTEST_K8S_VERSION

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC from markers.
	$(CONTROLLER_GEN) rbac:roleName=labhook-manager crd paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=labhook-webhookserver paths="./webhookserver/..." output:rbac:artifacts:config=config/rbac/webhookserver

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

# Go modules nested in this one (go ./... does not descend into them).
# config/prometheus/test is its own module too; test-prometheus covers it.
WIRE_MODULE ?= api/wire

.PHONY: fmt
fmt: ## go fmt, this module and api/wire.
	go fmt ./...
	cd $(WIRE_MODULE) && go fmt ./...

.PHONY: vet
vet: ## go vet, this module and api/wire.
	go vet ./...
	cd $(WIRE_MODULE) && go vet ./...

.PHONY: envtest
envtest: ## Provide kube-apiserver and etcd (built from source the first time).
	@hack/setup-envtest.sh >/dev/null

.PHONY: test
test: manifests generate fmt vet lint-helm ## Unit, envtest, webhookserver and chart tests on a real kube-apiserver + etcd, the alert rules, then bounded fuzzing.
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" HELM="$(HELM)" KUSTOMIZE="$(KUSTOMIZE)" go test ./... -count=1 -timeout 20m $(GO_TEST_FLAGS)
	$(MAKE) test-wire
	$(MAKE) test-prometheus
	$(MAKE) fuzz

.PHONY: test-wire
test-wire: ## api/wire's tests in its own module, and that it imports nothing of Kubernetes nor of labhook.
	cd $(WIRE_MODULE) && go test ./... -count=1 $(GO_TEST_FLAGS)
	@cd $(WIRE_MODULE) && deps="$$(go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' . | grep -v -e '^github.com/labhook/labhook/api/wire$$' -e '^github.com/standard-webhooks/' -e '^github.com/go-json-experiment/json/')" ; \
		if [ -n "$$deps" ]; then echo "api/wire may import the standard library, Standard Webhooks and jsontext only; it imports:"; echo "$$deps"; exit 1; fi

.PHONY: test-prometheus
test-prometheus: ## Alert rules and dashboard against the metrics labhook exports (own module: config/prometheus/test).
	cd config/prometheus/test && test -z "$$(gofmt -l .)" && go vet ./... && go test ./... -count=1

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each.
	@hack/fuzz.sh $(FUZZTIME)

.PHONY: bench
bench: ## Benchmarks of SPEC section 7, printed as BENCH lines with ratios.
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" go run ./test/bench

.PHONY: test-reliability
test-reliability: build ## Reliability suite with real processes (kill -9, leader election, outages).
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" go test ./test/reliability/... -count=1 -timeout 30m -v

.PHONY: test-e2e
test-e2e: build ## End-to-end: make dev's binary, kubectl apply of the samples, curl of the seed.
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" go test ./test/e2e/... -count=1 -timeout 15m -v

.PHONY: check-config
check-config: manifests $(KUSTOMIZE) ## kustomize build of config/default, the standalone-webhookserver overlay, the samples and config/prometheus.
	@for d in config/default config/overlays/standalone-webhookserver config/samples config/prometheus; do \
		$(KUSTOMIZE) build $$d >/dev/null || exit 1; echo "kustomize build $$d: ok"; done

.PHONY: helm
helm: manifests $(KUSTOMIZE) ## Generate the Helm chart charts/labhook from config/.
	go run ./hack/gen-chart --kustomize $(KUSTOMIZE)

.PHONY: lint-helm
lint-helm: manifests $(KUSTOMIZE) $(HELM) ## The chart is what config/ generates, and helm lint --strict passes in both layouts.
	go run ./hack/gen-chart --kustomize $(KUSTOMIZE) --check
	$(HELM) lint --strict charts/labhook
	$(HELM) lint --strict charts/labhook --set webhookserver.standalone=true --set webhookserver.tls.secretName=labhook-tls \
		--set monitoring.serviceMonitor=true --set monitoring.prometheusRule=true --set monitoring.dashboard=true --set 'manager.shards={a,b}'

.PHONY: check-helm
check-helm: lint-helm ## lint-helm, then helm template's output through server-side dry-run on envtest (restricted Pod Security, no warning).
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" HELM="$(HELM)" KUSTOMIZE="$(KUSTOMIZE)" go test ./test/helm/... -count=1 $(GO_TEST_FLAGS)

##@ Build

.PHONY: build
build: ## Build every binary into bin/, kubectl-labhook and its completion helper included.
	go build -o $(LOCALBIN)/ ./cmd/...
	install -m 0755 hack/kubectl_complete-labhook $(LOCALBIN)/

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig's cluster.
	go run ./cmd/manager --allow-http

.PHONY: dev
dev: ## Local control plane + CRDs + manager + webhookserver + receiver + demo organisation.
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" go run ./cmd/devenv

.PHONY: docker-build
docker-build: ## Build the image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests $(KUSTOMIZE) ## Install the CRDs into the current cluster.
	$(KUSTOMIZE) build config/crd | kubectl apply --server-side -f -

.PHONY: uninstall
uninstall: manifests $(KUSTOMIZE) ## Remove the CRDs from the current cluster.
	$(KUSTOMIZE) build config/crd | kubectl delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests $(KUSTOMIZE) ## Deploy labhook (manager + webhookserver sidecar) to the current cluster.
	cd config/manager && $(KUSTOMIZE) edit set image labhook=$(IMG)
	$(KUSTOMIZE) build config/default | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: $(KUSTOMIZE) ## Remove labhook from the current cluster.
	$(KUSTOMIZE) build config/default | kubectl delete --ignore-not-found -f -

##@ Tools

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

$(CONTROLLER_GEN): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $@

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Install kustomize into ./bin.

.PHONY: helm-tool
helm-tool: $(HELM) ## Build the pinned helm into ./bin.

$(HELM): | $(LOCALBIN)
	GOBIN=$(LOCALBIN)/helm-build go install -ldflags "-X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
		-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_K8S_MINOR) \
		-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_K8S_MINOR)" \
		helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/helm-build/helm $@ && rmdir $(LOCALBIN)/helm-build

$(KUSTOMIZE): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(LOCALBIN)/kustomize $@
