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

demo: setup
	$(CLI) lab down --quiet >/dev/null 2>&1 || true
	$(CLI) lab up
	$(CLI) inventory check inventories/lab.yaml
	$(CLI) bmc telemetry inventories/lab.yaml
	$(CLI) lab status
	@echo
	@echo "The lab keeps running: try 'clusterctl bmc show inventories/lab.yaml' (in $(VENV)/bin), then 'clusterctl lab down'."

test: setup
	tools/system-deps.sh
	$(VENV)/bin/pytest -q -p no:cacheprovider

lint: setup
	$(VENV)/bin/ruff check clusterctl tests benchmarks

bench: setup
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	-$(CLI) lab down >/dev/null 2>&1
	rm -rf $(VENV) build *.egg-info
