# labedge: `make run` starts the one-machine lab, `make test` runs every check.
# Both set up everything first: system packages (apt-get, via sudo when not root)
# and the virtual environment in .venv.

PYTHON ?= python3
VENV := .venv
# e.g. --system-site-packages to use Raspberry Pi OS's python3-lgpio (docs/dependencies.md)
VENV_FLAGS ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench soak deps system-deps clean firmware

deps: system-deps $(STAMP)

system-deps:
	@sh provisioning/scripts/install-system-packages.sh

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

run: deps
	$(VENV)/bin/labedge lab

test: deps firmware lint typecheck pytest

# The board firmware (avr-gcc) and simrig, the harness the tests run it in (simavr).
firmware: system-deps
	$(MAKE) -s -C firmware_bridge/firmware
	$(MAKE) -s -C firmware_bridge/simrig

lint:
	$(VENV)/bin/ruff check .

typecheck:
	$(VENV)/bin/mypy

pytest:
	$(VENV)/bin/pytest -q -n 2 --dist loadfile

bench: deps
	$(PY) -m bench.outbox_bench
	$(PY) -m bench.unit_bench
	$(PY) -m bench.command_bench --fsync-delay-ms 50
	$(PY) -m bench.control_latency_bench
	$(PY) -m bench.control_latency_bench --phases aligned --seconds 30
	$(PY) -m bench.recorder_bench
	$(PY) -m bench.engine_bench
	$(PY) -m bench.bridge_bench
	$(PY) -m bench.upload_bench
	$(PY) -m bench.session_log_bench
	$(PY) -m bench.dashboard_bench
	$(PY) -m bench.provision_bench

soak: deps
	$(PY) -m bench.outbox_bench --messages 5000000
	$(PY) -m bench.broker_queue_bench --messages 150000

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
	rm -rf firmware_bridge/firmware/build firmware_bridge/simrig/build
