# Two commands do all the set-up on a fresh machine with Python >= 3.10 and pip:
#   make lab    install the learner's environment into .venv and open the course
#               in JupyterLab (the course, PyTorch, JupyterLab: no test or
#               instructor tools)
#   make test   add the test, instructor and website tools to .venv and run the whole
#               test suite (fast mode)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LAB_STAMP := $(VENV)/.installed-lab
STAMP  := $(VENV)/.installed
SITE_STAMP := $(VENV)/.site-installed
JOBS   ?= auto
# -qq: errors only.  A plain --quiet still prints setuptools' notice about the
# editable install (a "BuildBackendWarning" box), which reads like an error;
# each step says what it does instead (`say`).
PIP    := $(BIN)/python -m pip --quiet --quiet
say     = @echo "make: $(1)"

# PyTorch, pinned in requirements.txt.  PyPI's Linux wheel bundles CUDA (a
# download of several GB); on Linux without an NVIDIA GPU the default takes
# PyTorch's CPU build from its own index instead (about 190 MB).  Override
# with `make lab TORCH_INDEX=` (PyPI only) or another index URL.  An index
# that does not answer within TORCH_PROBE seconds is skipped, with a message
# (tools/torch_index.py): pip alone would retry it for minutes.
TORCH       := $(shell grep -E '^torch==' requirements.txt)
TORCH_CPU   := https://download.pytorch.org/whl/cpu
TORCH_INDEX ?= $(shell [ "$$(uname -s)" = Linux ] && \
                 ! command -v nvidia-smi >/dev/null 2>&1 && echo $(TORCH_CPU))
TORCH_PROBE ?= 5

# Colab's own versions (its package list, 2026-08) of what the notebooks
# import, installed beside the environment: the simulated-Colab test
# (tests/colab_sim.py) and the quiz's widget test run against them.  Python
# 3.13 and torch 2.11 are the two that differ (see the README's test section).
COLAB_DIR      := $(VENV)/colab
COLAB_PACKAGES := numpy==2.1.3 matplotlib==3.10.0 ipywidgets==7.7.1 \
                  widgetsnbextension==3.6.10 ipython==7.34.0 ipykernel==6.17.1 \
                  ipython_genutils==0.2.0 backcall==0.2.0 pickleshare==0.7.5 \
                  decorator==5.1.1

# Colab's runtime itself, for `make colab-sim`: Python 3.13 with torch 2.11
# and the versions above, in an environment of its own.  PyTorch's CPU build
# where its index answers; else PyPI's wheel, the CUDA build (2.6 GB with its
# NVIDIA libraries, which `import torch` needs even on a CPU).
COLAB_PYTHON  ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) \
                   $(shell command -v python3.13 2>/dev/null))
COLAB_RUNTIME := $(VENV)/colab-runtime
COLAB_TORCH   := torch==2.11.0
# rebuilt when these versions change, not on every edit of this Makefile
COLAB_STAMP   := $(COLAB_RUNTIME)/.installed-$(shell echo '$(COLAB_TORCH) $(COLAB_PACKAGES)' | cksum | cut -d' ' -f1)

# Root (containers, CI) must say so to JupyterLab, which refuses otherwise.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
LAB_ARGS   ?=
export PIP_ROOT_USER_ACTION := ignore

.PHONY: lab test notebooks check release clean colab-sim gpu-check site

# The learner's environment: what `make lab` needs and nothing else.
$(LAB_STAMP): requirements.txt pyproject.toml setup.py Makefile tools/torch_index.py
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 is needed"'
	$(call say,[1/4] a virtual environment in $(VENV))
	$(PYTHON) -m venv $(VENV)
	$(call say,[2/4] an up-to-date pip)
	$(PIP) install --upgrade pip
	$(call say,[3/4] $(TORCH)$(if $(TORCH_INDEX), from $(TORCH_INDEX) if it answers within $(TORCH_PROBE) s) (a download of 190 MB to several GB: minutes))
	index=$$($(PYTHON) tools/torch_index.py --timeout $(TORCH_PROBE) '$(TORCH_INDEX)') && \
	  $(PIP) install --no-deps $${index:+--extra-index-url "$$index"} '$(TORCH)'
	$(call say,[4/4] the course package and JupyterLab (requirements.txt: a few minutes))
	$(PIP) install -r requirements.txt
	touch $@

# `make test`'s environment: the learner's, plus the test and instructor tools
# (requirements-test.txt) and Colab's versions of the notebooks' imports.
$(STAMP): $(LAB_STAMP) $(SITE_STAMP) requirements-test.txt
	$(call say,[1/2] the test and instructor tools (requirements-test.txt))
	$(PIP) install -r requirements-test.txt
	$(call say,[2/2] Colab's package versions into $(COLAB_DIR))
	rm -rf $(COLAB_DIR)
	$(PIP) install --no-deps --target $(COLAB_DIR) $(COLAB_PACKAGES)
	touch $@

# Colab's runtime (make colab-sim): see COLAB_PYTHON above.
$(COLAB_STAMP):
	@test -n "$(COLAB_PYTHON)" || { echo "make colab-sim: needs Python 3.13: put python3.13 on PATH or set COLAB_PYTHON=<its path>"; exit 2; }
	$(call say,[1/4] a Python 3.13 environment in $(COLAB_RUNTIME) ($(COLAB_PYTHON)))
	rm -rf $(COLAB_RUNTIME)
	$(COLAB_PYTHON) -m venv $(COLAB_RUNTIME)
	$(COLAB_RUNTIME)/bin/python -m pip --quiet --quiet install --upgrade pip
	$(call say,[2/4] $(COLAB_TORCH): the CPU build from $(TORCH_CPU) if it answers within $(TORCH_PROBE) s; else PyPI's CUDA build)
	index=$$($(PYTHON) tools/torch_index.py --timeout $(TORCH_PROBE) '$(TORCH_CPU)') && \
	  $(COLAB_RUNTIME)/bin/python -m pip --quiet --quiet install --no-deps $${index:+--extra-index-url "$$index"} '$(COLAB_TORCH)'
	$(call say,[3/4] torch's dependencies and the kernel's packages (with PyPI's build: 2 GB of NVIDIA libraries))
	$(COLAB_RUNTIME)/bin/python -m pip --quiet --quiet install '$(COLAB_TORCH)' \
	  $(filter numpy% matplotlib% ipython==% ipykernel%,$(COLAB_PACKAGES)) pillow tqdm nbformat nbclient
	$(call say,[4/4] Colab's versions of the notebooks' imports)
	$(COLAB_RUNTIME)/bin/python -m pip --quiet --quiet install --no-deps $(COLAB_PACKAGES)
	touch $@

# Every learner notebook on a simulated fresh Colab with Colab's own Python and
# torch (`make test` simulates Colab with this environment's Python and torch).
# PYDEVD_...: ipykernel's debugger warns about Python 3.13's frozen modules.
colab-sim: $(LAB_STAMP) $(COLAB_STAMP)
	$(call say,every learner notebook on a simulated fresh Colab: Python 3.13 and torch 2.11 (tests/colab_sim.py))
	PYDEVD_DISABLE_FILE_VALIDATION=1 \
	  $(BIN)/python tests/colab_sim.py --python $(COLAB_RUNTIME)/bin/python notebooks/*.ipynb

# The course as a website (README: "The course as a website"): every lesson
# with the outputs of a full-mode run (SITE_FAST=1 for fast mode), built
# offline into $(SITE_OUT)/html; runs are cached, so a prose edit rebuilds fast.
SITE_OUT   ?= build/site
SITE_FAST  ?=

$(SITE_STAMP): $(LAB_STAMP) requirements-site.txt
	$(call say,the website's tools (requirements-site.txt: Sphinx, MyST-NB, MathJax))
	$(PIP) install -r requirements-site.txt
	touch $@

site: $(SITE_STAMP)
	BNCOURSE_FAST=$(SITE_FAST) $(BIN)/python tools/build_site.py --out $(SITE_OUT) $(SITE_ARGS)

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab $(ALLOW_ROOT) $(LAB_ARGS) notebooks/

# pytest exits with 5 when it collected nothing: say so and fail.
# OMP_NUM_THREADS=1: the xdist workers already use every core.  No MPLBACKEND:
# kernels keep the inline backend, so every figure is really rendered to PNG.
test: $(STAMP)
	BNCOURSE_FAST=1 OMP_NUM_THREADS=1 \
	  $(BIN)/python -m pytest -n $(JOBS) --dist loadfile $(PYTEST_ARGS); \
	  rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5): failing"; fi; \
	  exit $$rc

# Author tools: regenerate the learner copies, or check they are up to date.
notebooks: $(LAB_STAMP)
	$(BIN)/python tools/make_student.py

check: $(LAB_STAMP)
	$(BIN)/python tools/make_student.py --check

# The learner-only course (no solutions, tests or grader), for the public
# repository Colab installs from: `make release` (folder release/) or
# `make release RELEASE_DIR=...`; tools/make_release.py --branch NAME commits it.
RELEASE_DIR ?= release
release: $(STAMP)
	$(BIN)/python tools/make_release.py $(RELEASE_DIR)

# Lesson 05's GPU plan on one real GPU, in under 8 minutes: the main pair to its
# budget, the projection against the clock, the race (benchmarks/gpu_check.py).
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
