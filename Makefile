# Two commands on a fresh Debian machine: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip --disable-pip-version-check -q
CLI     = $(VENV)/bin/clusterctl

.PHONY: setup demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch first, pinned: it is a local CPU build here; an unpinned `torch` pulls CUDA wheels.
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[postgres,burnin,kubernetes,test,dev]'
	touch $@

setup: $(VENV)/.installed

# The main job on the embedded lab: BMCs over Redfish, provisioning (firmware, BIOS, the OS from
# virtual media onto bare servers, Ansible),
# validation over SSH, a Transformer burn-in whose verdict names a node slowed on purpose, a day-2
# check round, and the real Transformer trained once by torchrun on this machine.
demo: setup
	$(CLI) lab down --quiet >/dev/null 2>&1 || true
	$(CLI) lab up --bare
	$(CLI) inventory check inventories/lab.yaml
	$(CLI) bmc telemetry inventories/lab.yaml
	$(CLI) provision inventories/lab.yaml --yes
	$(CLI) validate inventories/lab.yaml
	$(CLI) lab fault add gpu0005 gpu_slow --param gpu=1 --param factor=0.5
	$(CLI) burnin inventories/lab.yaml --launcher ssh --model transformer-big --steps 50 \
	    || echo "(expected: the burn-in names gpu0005, slowed on purpose)"
	$(CLI) monitor inventories/lab.yaml --once
	$(CLI) check inventories/lab.yaml --suite quick || true
	@echo "The real workload once: two torchrun ranks train transformer-tiny here (gloo on the CPU);"
	@echo "they share this machine's cores, so only a rank below 0.3 of the other's speed fails."
	$(CLI) burnin --launcher local --nproc 2 --model transformer-tiny --steps 30 --log-every 10 \
	    --straggler-ratio 0.3
	$(CLI) status || true
	@echo
	@echo "The lab keeps running. See it in a browser: .venv/bin/clusterctl dashboard inventories/lab.yaml"
	@echo "(it prints its token), then stop the lab with .venv/bin/clusterctl lab down."

test: setup
	tools/system-deps.sh
	$(VENV)/bin/pytest -q -p no:cacheprovider --durations=25

lint: setup
	$(VENV)/bin/ruff check clusterctl tests benchmarks

bench: setup
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	-$(CLI) lab down >/dev/null 2>&1
	rm -rf $(VENV) build *.egg-info
