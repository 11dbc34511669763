# glusterfs-provisioner — developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install proto test test-fast lint demo demo-migrate bench chaos fuzz sanity contract contract-kube bench-kube e2e-node clean image image-test

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package (editable) with test extras

proto: $(STAMP) ## regenerate the CSI stubs in provisioner/csi/ from proto/csi.proto
	$(PY) -m provisioner.csi.protogen

test: $(STAMP) ## run the whole test suite (sets up GlusterFS when root)
	bash scripts/ensure-gluster.sh
	$(PY) -m pytest

test-fast: $(STAMP) ## the quick part (~1,500 tests): no real GlusterFS, no deploy rendering, nothing slow
	$(PY) -m pytest -q -m "not slow and not gluster and not deploy"

HOSTILE_EXAMPLES ?= 20000
fuzz: $(STAMP) ## hostile-input property tests of every CSI RPC with many random examples (HOSTILE_EXAMPLES=20000 per RPC group)
	HYPOTHESIS_PROFILE=fuzz HOSTILE_EXAMPLES=$(HOSTILE_EXAMPLES) $(PY) -m pytest -q --timeout=3600 tests/integration/csi/test_hostile_input.py

HEKETI_URL ?=
HEKETI_KEY ?=
contract: $(STAMP) ## tests/contract against a real Heketi: make contract HEKETI_URL=http://host:port HEKETI_KEY=<admin key> (skipped when unset)
	@HEKETI_URL='$(HEKETI_URL)' HEKETI_KEY='$(HEKETI_KEY)' $(PY) -m pytest -q -rs -k 'real and not testbed' tests/contract

KUBECONFIG ?=
CSI_PROVISIONER ?=
CSI_RESIZER ?=
contract-kube: $(STAMP) ## tests/contract against a real cluster: make contract-kube KUBECONFIG=<cluster-admin kubeconfig> [HEKETI_URL=... HEKETI_KEY=...] [CSI_PROVISIONER=<bin> CSI_RESIZER=<bin>] [KUBE_AUDIT_LOG=<its audit log>: then deploy/'s RBAC against this run's requests] (skipped when unset)
	@start=$$(if [ -n '$(KUBE_AUDIT_LOG)' ]; then stat -c %s '$(KUBE_AUDIT_LOG)'; else echo 0; fi); \
	CONTRACT_KUBECONFIG='$(KUBECONFIG)' HEKETI_URL='$(HEKETI_URL)' HEKETI_KEY='$(HEKETI_KEY)' \
	  CSI_PROVISIONER='$(CSI_PROVISIONER)' CSI_RESIZER='$(CSI_RESIZER)' $(PY) -m pytest -q -rs -k 'kubeapiserver' tests/contract \
	&& if [ -n '$(KUBE_AUDIT_LOG)' ]; then $(PY) -m tests.contract.rbac_audit '$(KUBE_AUDIT_LOG)' --from-byte $$start; fi

# Test code under mypy --strict: the fakes (checked against their Protocols by
# tests/fakes_conform.py), the contract tests and the shared fixtures.
TYPED_TESTS := tests/fakes_conform.py tests/unit/fake_heketi.py tests/integration/csi/fake_kernel.py \
	tests/unit/csi/test_node.py tests/unit/csi/test_mounter.py tests/contract tests/conftest.py tests/polling.py
lint: $(STAMP) ## ruff (lint + format check) and mypy --strict on our code, the fakes and the contract tests
	$(VENV)/bin/ruff check provisioner testbed tests bench
	$(VENV)/bin/ruff format --check provisioner testbed tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict $(TYPED_TESTS)

demo: $(STAMP) ## the whole journey on this machine (root): claim → Heketi → Gluster → mount → expand → delete
	bash scripts/ensure-gluster.sh
	$(PY) -m testbed.demo

demo-migrate: $(STAMP) ## in-tree GlusterFS PVs (static + Heketi) → CSI PVs on real GlusterFS: plan, apply, mount, delete
	bash scripts/ensure-gluster.sh
	$(PY) -m testbed.demo_migrate

bench: $(STAMP) ## benchmarks (burst, Heketi sizes, scale, node, names; ~4 min on an idle 2-core machine): a table, bench/results.json, charts in docs/images/
	bash scripts/ensure-gluster.sh
	$(PY) -m bench.run
	$(PY) -m bench.charts

KUBE_AUDIT_LOG ?=
bench-kube: $(STAMP) ## the burst on the API test server and on a real cluster: make bench-kube KUBECONFIG=<cluster-admin kubeconfig> [KUBE_AUDIT_LOG=<its audit log>]
	$(PY) -m bench.burst_kube --kubeconfig '$(KUBECONFIG)' $(if $(KUBE_AUDIT_LOG),--audit-log '$(KUBE_AUDIT_LOG)')

CHAOS_MINUTES ?= 5
CHAOS_SEED ?=
chaos: $(STAMP) ## fault soak of the whole system with invariants (CHAOS_MINUTES=5, CHAOS_SEED=random): a table, and chaos/results.json
	CHAOS_MINUTES=$(CHAOS_MINUTES) CHAOS_SEED=$(CHAOS_SEED) $(PY) -m testbed.chaos

image: ## build the image with podman, no registry needed (root; IMAGE=name:tag) and save it as an OCI archive in build/image/
	PYTHON=$(PYTHON) bash scripts/build-image.sh

image-test: $(STAMP) ## build the image from a fresh clone of HEAD and check the archive (root, podman, debootstrap; 2-4 min)
	IMAGE_BUILD_TEST=1 $(PY) -m pytest -q -p no:cacheprovider tests/image

e2e-node: $(STAMP) ## the seed's scenario on a real node through deploy/ and the image: make e2e-node E2E_NODE_KUBECONFIG=path [E2E_NODE_API=host:port] (skipped when unset; docs/development.md)
	bash scripts/ensure-gluster.sh
	@E2E_NODE_KUBECONFIG='$(E2E_NODE_KUBECONFIG)' E2E_NODE_API='$(E2E_NODE_API)' \
	  E2E_NODE_IMAGE='$(E2E_NODE_IMAGE)' E2E_NODE_ROLLOUT_IMAGE='$(E2E_NODE_ROLLOUT_IMAGE)' \
	  E2E_NODE_APP_IMAGE='$(E2E_NODE_APP_IMAGE)' $(PY) -m pytest -q -s -rs tests/e2e/test_node.py

CSI_SANITY ?= /tmp/peers/csi-sanity
sanity: $(STAMP) ## kubernetes-csi csi-sanity against node --controller-service on real GlusterFS (root; CSI_SANITY=path of a csi-sanity binary)
	bash scripts/ensure-gluster.sh
	$(PY) -m testbed.csi_sanity --csi-sanity $(CSI_SANITY)

clean: ## remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
