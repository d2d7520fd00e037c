# Towerbox — `make help` lists the targets.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
IMAGES := var/images
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help
help:  ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

.PHONY: deps
deps:  ## Install missing Debian packages (needs root)
	@scripts/install-deps.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

DEMO_IMAGE := $(IMAGES)/demo-initramfs.cpio.gz $(IMAGES)/demo-model.img
# One run of build.sh writes the kernel, the initramfs and the demo model file.
$(DEMO_IMAGE) &: images/demo/build.sh
	@images/demo/build.sh $(IMAGES)

.PHONY: setup
setup: deps $(STAMP) $(DEMO_IMAGE)  ## Packages, venv and demo image (idempotent)

.PHONY: run
run: setup  ## Start the appliance (real libvirt when possible) and the web UI
	@scripts/start-libvirtd.sh
	@scripts/start-ovs.sh
	@echo "Towerbox API: http://127.0.0.1:8443  (OpenAPI: /api/schema, health: /healthz)"
	@echo "Admin password: $(CURDIR)/var/state/admin-password (written on first start)"
	@echo "CLI: TOWERBOX_CONFIG=etc/dev.toml $(VENV)/bin/towerbox vm list"
	@exec scripts/run-node.sh

.PHONY: enroll
enroll: $(STAMP)  ## Enroll this node's agent with the local registry: make enroll TOKEN=tbe_...
	@test -n "$(TOKEN)" || { echo "usage: make enroll TOKEN=tbe_...  (create a site on the registry UI's Enrollment page, http://127.0.0.1:8081/enroll, while make run runs)" >&2; exit 2; }
	@mkdir -p var/agent var/run
	@$(VENV)/bin/towerbox agent --agent-config etc/agent-dev.toml token --out var/agent/agent-token
	@$(VENV)/bin/towerbox agent --agent-config etc/agent-dev.toml enroll http://127.0.0.1:8600 "$(TOKEN)"
	@echo "make run starts the agent within a few seconds (it waits for the enrollment)"

# The suite starts hundreds of Python processes (daemons, CLI calls, registry, agent,
# UI): each one compiles this checkout's modules again where PYTHONDONTWRITEBYTECODE
# is set, some 0.5 s of CPU a start. Their bytecode is cached under var/ instead.
PYCACHE := PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(CURDIR)/var/pycache

# Two workers: much of the suite waits on daemons, guests and browsers it started, so
# a second module running meanwhile takes the suite from some 35 to some 20 minutes on
# two cores. A module runs whole on one worker (its module-scoped daemons start once),
# and the modules that use the host's libvirtd or Open vSwitch take turns
# (tests/conftest.py). TEST_WORKERS=0 runs it all in this one process.
TEST_WORKERS ?= 2

.PHONY: test
test: setup  ## Run the whole test suite (starts libvirtd and Open vSwitch if needed)
	@scripts/start-libvirtd.sh
	@$(PYCACHE) TOWERBOX_IMAGE_DIR=$(CURDIR)/$(IMAGES) $(VENV)/bin/pytest \
		-n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP)  ## ruff, mypy --strict and the import contracts (pyproject.toml)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports --no-cache

# The developer's loop: everything that needs no root, Open vSwitch, libvirtd, browser
# or PostgreSQL and is not slow. `make test` runs the rest too. PYTHONPATH: this
# checkout's code, in the daemons the tests start too, whichever checkout the venv
# was installed from.
CHECK_MARKS := not (root or ovs or libvirtd or browser or postgres or slow)
CHECK_WORKERS ?= 2

.PHONY: check
check: lint  ## Lint, then the fast tests on 2 workers (no root, OVS, libvirtd, browser, PostgreSQL)
	@$(PYCACHE) PYTHONPATH=$(CURDIR) TOWERBOX_IMAGE_DIR=$(CURDIR)/$(IMAGES) $(VENV)/bin/pytest -q -n $(CHECK_WORKERS) \
		--dist loadscope -m "$(CHECK_MARKS)" $(PYTEST_ARGS)

.PHONY: bench
bench: setup  ## Measure the figures the issues name (non-zero exit when a target is missed)
	@scripts/start-libvirtd.sh
	@rc=0; for b in bench/*.py; do echo "== $$b"; PYTHONPATH=$(CURDIR) TOWERBOX_IMAGE_DIR=$(CURDIR)/$(IMAGES) $(PY) $$b || rc=1; done; exit $$rc

# FUZZ_CASES per API (each a real process) and FUZZ_SCENARIOS stateful sequences;
# FUZZ_SEED=<seed> replays a printed run.
FUZZ_CASES ?= 20000
FUZZ_SCENARIOS ?= 300

.PHONY: fuzz
fuzz: setup  ## A long API fuzzing campaign (random seed, printed); fails on any finding
	@PYTHONPATH=$(CURDIR) TOWERBOX_IMAGE_DIR=$(CURDIR)/$(IMAGES) FUZZ_CASES=$(FUZZ_CASES) FUZZ_SCENARIOS=$(FUZZ_SCENARIOS) \
		$(PY) bench/api_fuzz.py

.PHONY: chaos
chaos: setup  ## 250 random-kill crash runs across the operations (crash_runs_converged)
	@PYTHONPATH=$(CURDIR) TOWERBOX_IMAGE_DIR=$(CURDIR)/$(IMAGES) $(PY) bench/crash_runs.py

.PHONY: clean
clean:  ## Remove the venv and local state (var/)
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
