# The README's two commands: `make demo` and `make test`. Both set up everything on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.deps-installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test build sysdeps bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip "setuptools>=77" wheel "Cython>=3.0" "numpy>=2.0"
	$(PY) -m pip install -q --no-build-isolation -e ".[test,bench]"
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

bench: build
	$(PY) -m benchmarks.kinematics
	$(PY) -m benchmarks.control
	$(PY) -m benchmarks.sim
	$(PY) -m benchmarks.hardware
	$(PY) -m benchmarks.teleop
	$(PY) -m benchmarks.exo
	$(PY) -m benchmarks.ortho

lint: build
	$(VENV)/bin/ruff check machaon tests benchmarks

clean:
	rm -rf build machaon/**/*.so machaon/**/_*.c
