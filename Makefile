# Two commands do all the set-up on a fresh machine with Python >= 3.10 and pip:
#   make lab    install into .venv and open the course in JupyterLab
#   make test   install into .venv and run the whole test suite (fast mode)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JOBS   ?= auto
PIP    := $(BIN)/python -m pip

# PyTorch, pinned in requirements.txt.  PyPI's Linux wheel bundles CUDA (a
# download of several GB); on Linux without an NVIDIA GPU the default takes
# PyTorch's CPU build from its own index instead (about 190 MB).  Override
# with `make lab TORCH_INDEX=` (PyPI only) or another index URL.
TORCH       := $(shell grep -E '^torch==' requirements.txt)
TORCH_CPU   := https://download.pytorch.org/whl/cpu
TORCH_INDEX ?= $(shell [ "$$(uname -s)" = Linux ] && \
                 ! command -v nvidia-smi >/dev/null 2>&1 && echo $(TORCH_CPU))

# Colab's own versions (its package list, 2026-08) of what the notebooks
# import, installed beside the environment: the simulated-Colab test
# (tests/colab_sim.py) and the quiz's widget test run against them.  Python
# 3.13 and torch 2.11 are the two that differ (see the README's test section).
COLAB_DIR      := $(VENV)/colab
COLAB_PACKAGES := numpy==2.1.3 matplotlib==3.10.0 ipywidgets==7.7.1 \
                  widgetsnbextension==3.6.10 ipython==7.34.0 ipykernel==6.17.1 \
                  ipython_genutils==0.2.0 backcall==0.2.0 pickleshare==0.7.5 \
                  decorator==5.1.1

# Root (containers, CI) must say so to JupyterLab, which refuses otherwise.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
LAB_ARGS   ?=
export PIP_ROOT_USER_ACTION := ignore

.PHONY: lab test notebooks check clean site

$(STAMP): requirements.txt pyproject.toml setup.py Makefile
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet --no-deps $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) '$(TORCH)'
	$(PIP) install --quiet -r requirements.txt
	rm -rf $(COLAB_DIR)
	$(PIP) install --quiet --no-deps --target $(COLAB_DIR) $(COLAB_PACKAGES)
	touch $@

# The course as a website (README: "The course as a website"): every lesson
# with the outputs of a full-mode run (SITE_FAST=1 for fast mode), built
# offline into $(SITE_OUT)/html; runs are cached, so a prose edit rebuilds fast.
SITE_STAMP := $(VENV)/.site-installed
SITE_OUT   ?= build/site
SITE_FAST  ?=

$(SITE_STAMP): $(STAMP) requirements-site.txt
	$(PIP) install --quiet -r requirements-site.txt
	touch $@

site: $(SITE_STAMP)
	BNCOURSE_FAST=$(SITE_FAST) $(BIN)/python tools/build_site.py --out $(SITE_OUT) $(SITE_ARGS)

lab: $(STAMP)
	$(BIN)/jupyter lab $(ALLOW_ROOT) $(LAB_ARGS) notebooks/

# pytest exits with 5 when it collected nothing: say so and fail.
# OMP_NUM_THREADS=1: the xdist workers already use every core.  No MPLBACKEND:
# kernels keep the inline backend, so every figure is really rendered to PNG.
test: $(STAMP) $(SITE_STAMP)
	BNCOURSE_FAST=1 OMP_NUM_THREADS=1 \
	  $(BIN)/python -m pytest -n $(JOBS) --dist loadfile $(PYTEST_ARGS); \
	  rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5): failing"; fi; \
	  exit $$rc

# Author tools: regenerate the learner copies, or check they are up to date.
notebooks: $(STAMP)
	$(BIN)/python tools/make_student.py

check: $(STAMP)
	$(BIN)/python tools/make_student.py --check

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
