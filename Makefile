# Two commands do all the set-up on a fresh machine with Python >= 3.10 and pip:
#   make lab    install into .venv and open the course in JupyterLab
#   make test   install into .venv and run the whole test suite (fast mode)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JOBS   ?= auto

.PHONY: lab test notebooks check clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 is needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	# Colab ships ipywidgets 7.7.1: the quiz's widget is also tested against it,
	# from this side folder (the environment itself keeps ipywidgets 8).
	$(BIN)/python -m pip install --quiet --no-deps --target $(VENV)/ipywidgets7 \
	  ipywidgets==7.7.1 ipython_genutils
	touch $@

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

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
notebooks: $(STAMP)
	$(BIN)/python tools/make_student.py

check: $(STAMP)
	$(BIN)/python tools/make_student.py --check

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
