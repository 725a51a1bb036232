# Two entry points, each sets up its own virtual environment first:
#   make demo   trains the Warcraft shortest-path demo
#   make test   runs the test suite
PYTHON ?= python3
VENV ?= .venv
PIP = $(VENV)/bin/pip install --quiet --disable-pip-version-check -c ci/constraints.txt
PYTEST_ARGS ?=

.PHONY: demo test bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo: $(VENV)/bin/python pyproject.toml ci/constraints.txt
	$(PIP) -e '.[torch,plot]'
	touch $@

$(VENV)/.test: $(VENV)/bin/python pyproject.toml ci/constraints.txt Makefile
	$(PIP) -e '.[torch,jax,tensorflow,ortools,scip,dask,ray,plot,dev]'
	touch $@

demo: $(VENV)/.demo
	$(VENV)/bin/imle-solvers demo

test: $(VENV)/.test
	$(VENV)/bin/python -m pytest -q -n 2 $(PYTEST_ARGS)

bench: $(VENV)/.test
	$(VENV)/bin/imle-solvers bench

clean:
	rm -rf $(VENV) build *.egg-info
