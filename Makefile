# gpuinfer.serving developer entry points. `make demo` and `make test` are the README's two commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SCENARIO ?= llama70b-tp8
RENDER_DIR ?= out/$(SCENARIO)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: setup demo plan test unit lint sanity e2e sim-up sim-down bench build-collection clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q --upgrade pip
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

# Main job on the built-in default (Llama-3.1-70B-Instruct on 8 x A100-80GB): plan, validate,
# render every manifest into $(RENDER_DIR); no cluster needed.
demo: setup
	$(BIN)/ansible-playbook -i inventories/$(SCENARIO) playbooks/site.yml -e gpuinfer_render_dir=$(CURDIR)/$(RENDER_DIR)

plan: setup
	$(BIN)/ansible-playbook -i inventories/$(SCENARIO) playbooks/plan.yml -e gpuinfer_render_dir=$(CURDIR)/$(RENDER_DIR)

# The whole suite, as CI runs it: fast tiers first, then the end-to-end tier on the simulated cluster,
# then the execution-environment tier (builds the EE with podman; skipped loudly without a container engine).
test: setup unit lint sanity changelog-lint galaxy-check e2e ee-test

unit: setup
	$(BIN)/python -m pytest -m "not e2e and not ee" -n 2 -q

lint: setup
	$(BIN)/ansible-lint --profile production --offline

sanity: setup
	VENV=$(abspath $(VENV)) tests/sanity/run.sh

# One pytest session brings the simulated cluster up once (tests/e2e/conftest.py) and takes it down.
# The build step is separate so a first, cold compile (~14 min on 2 cores) shows as its own step.
e2e: setup
	tests/cluster/sim.sh build
	$(BIN)/python -m pytest -m e2e -p no:xdist -q

sim-up: setup
	tests/cluster/sim.sh up

sim-down:
	tests/cluster/sim.sh down

# Benchmarks print numbers (see README); the cluster ones need `make sim-up` (large-2000 for cluster_info).
bench: setup
	$(BIN)/python benchmarks/bench_gpu_sizing.py
	$(BIN)/python benchmarks/bench_site_vs_kubectl.py

build-collection: setup
	$(BIN)/ansible-galaxy collection build --force --output-path out/ collections/ansible_collections/gpuinfer/serving

clean:
	rm -rf out/ collections/ansible_collections/gpuinfer/serving/tests/output

# --- Execution environment, AWX / Automation Controller configuration, Galaxy (tests/ee, awx/) ---
# `make ee` builds the EE from execution-environment.yml (podman: sudo tests/ee/install-podman.sh);
# EE_BASE_IMAGE=local builds a Debian base here without any registry, or name an upstream EE base.
EE_TAG ?= localhost/gpuinfer-serving-ee:latest
EE_BASE_IMAGE ?= local
.PHONY: ee ee-test awx-surveys awx-check galaxy-check changelog-lint contracts-refresh

ee: setup
	EE_TAG=$(EE_TAG) EE_BASE_IMAGE=$(EE_BASE_IMAGE) tests/ee/build.sh

# Builds the EE, then deploys through it to the simulated cluster (one pytest session, like make e2e).
ee-test: setup
	tests/cluster/sim.sh build
	EE_TAG=$(EE_TAG) EE_BASE_IMAGE=$(EE_BASE_IMAGE) $(BIN)/python -m pytest -m ee -p no:xdist -q tests/ee

# Regenerate awx/surveys.generated.yml from the roles' meta/argument_specs.yml.
awx-surveys: setup
	$(BIN)/python awx/surveys.py

awx-check: setup
	$(BIN)/python -m pytest -q -p no:xdist tests/unit/test_awx_config.py

galaxy-check: setup
	tests/ee/galaxy-check.sh

changelog-lint: setup
	cd collections/ansible_collections/gpuinfer/serving && $(abspath $(BIN))/antsibull-changelog lint

# Drift against the newest upstream releases (vLLM, SGLang, huggingface_hub on PyPI; the GPU Operator chart): extracts
# their contracts next to the pinned ones and prints what they add, remove or change among the flags, variables,
# metrics and values keys every inventories/ scenario renders (tests/contracts/README.md). Needs the network.
contracts-refresh: setup
	$(BIN)/python tests/contracts/refresh.py --latest
