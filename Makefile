# The README's two commands: `make demo` and `make test`. Both set up everything on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.deps-installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test build sysdeps bench lint lock clean

$(PY):
	$(PYTHON) -m venv $(VENV)

LOCK   := requirements.lock
# Everything `make lock` resolves: runtime, studies (Ray), tests, benchmarks, the kernel build.
EXTRAS := --extra trials --extra test --extra bench --extra build

# Exact, hashed versions from the lock file (pip refuses anything else), then Machaon itself.
$(STAMP): $(LOCK) pyproject.toml | $(PY)
	$(PY) -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

# Cython kernels, rebuilt in place whenever a .pyx changed (cythonize skips unchanged ones).
build: $(STAMP)
	$(PY) setup.py -q build_ext --inplace

# System packages: Xvfb for the GUI tests (xdotool types real keys into the sim window there),
# tmux for driving the operator console in a terminal.
sysdeps:
	@command -v xvfb-run >/dev/null 2>&1 && command -v tmux >/dev/null 2>&1 && command -v xdotool >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq xvfb xauth tmux xdotool >/dev/null; }

test: build sysdeps
	$(PY) -m pytest -q

demo: build sysdeps
	$(VENV)/bin/machaon demo

# Every benchmark but the soak (`python -m benchmarks.soak --minutes N`, an hour by default).
bench: build
	$(PY) -m benchmarks.kinematics
	$(PY) -m benchmarks.control
	$(PY) -m benchmarks.sim
	$(PY) -m benchmarks.hardware
	$(PY) -m benchmarks.teleop
	$(PY) -m benchmarks.exo
	$(PY) -m benchmarks.ortho
	$(PY) -m benchmarks.bridges
	$(PY) -m benchmarks.desk
	$(PY) -m benchmarks.teleop_security
	$(PY) -m benchmarks.trials
	$(PY) -m benchmarks.realdata

# Re-resolve the lock file to the newest releases inside pyproject.toml's ranges, install them and
# run the whole suite against them. Commit the new lock only if the suite passes.
lock: | $(PY)
	$(PY) -m pip install -q "uv>=0.9,<1"
	$(VENV)/bin/uv pip compile pyproject.toml $(EXTRAS) --upgrade --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-unknown-linux-gnu -o $(LOCK)
	rm -f $(STAMP)
	$(MAKE) test

lint: build
	$(VENV)/bin/ruff check machaon tests benchmarks

clean:
	rm -rf build machaon/**/*.so machaon/**/_*.c
