# Two entry points, each sets up its own virtual environment first:
#   make demo   trains the Warcraft shortest-path demo
#   make test   runs the test suite
#   make docs   builds the documentation site (mkdocs --strict) into site/
PYTHON ?= python3
VENV ?= .venv
PIP = $(VENV)/bin/pip install --quiet --disable-pip-version-check -c ci/constraints.txt
PYTEST_ARGS ?=

.PHONY: demo test bench docs clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo: $(VENV)/bin/python pyproject.toml ci/constraints.txt
	$(PIP) -e '.[torch,plot]'
	touch $@

# docs: tests/test_site.py builds the site and checks its HTML (links, offline, alt text, ...)
$(VENV)/.test: $(VENV)/bin/python pyproject.toml ci/constraints.txt Makefile
	$(PIP) -e '.[torch,jax,tensorflow,ortools,scip,dask,ray,plot,examples,compare,docs,dev]'
	touch $@

$(VENV)/.docs: $(VENV)/bin/python pyproject.toml ci/constraints.txt Makefile
	$(PIP) -e '.[torch,jax,tensorflow,ortools,dask,docs]'  # the pages' exec blocks run these
	touch $@

demo: $(VENV)/.demo
	$(VENV)/bin/imle-solvers demo --force  # a rerun replaces runs/demo/'s picture and metrics

test: $(VENV)/.test
	$(VENV)/bin/python -m pytest -q -n 2 $(PYTEST_ARGS)

# every broken link, missing page or unresolved reference fails the build (strict: true in mkdocs.yml)
docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 TF_CPP_MIN_LOG_LEVEL=2 $(VENV)/bin/mkdocs build --strict --site-dir site

bench: $(VENV)/.test
	$(VENV)/bin/imle-solvers bench

clean:
	rm -rf $(VENV) build site *.egg-info
