#!/usr/bin/env bash
# Gradescope's autograder image: Gradescope runs this once, as root, when it
# builds the image, after unpacking the autograder zip INTO /autograder/source.
# Build the zip with `python tools/gradescope/make_zip.py`: this script,
# run_autograder and the course sit at the zip's root.
#
# It installs PyTorch's CPU build and what grading needs (the course package
# and its dependencies: NumPy, Matplotlib, nbclient, ipykernel ...), not
# JupyterLab or the test tools, plus bubblewrap for the grader's sandbox.
#
# To try it elsewhere: AUTOGRADER_ROOT (default /autograder); PYTHON3 (the
# interpreter for the venv, default python3); AUTOGRADER_DEPS=<site-packages>
# takes the dependencies from an existing environment of the same Python
# instead of installing them (no network, no apt: tests/test_gradescope.py).
set -euo pipefail
root="${AUTOGRADER_ROOT:-/autograder}"
src="$root/source"
venv="$root/venv"
python3="${PYTHON3:-python3}"
deps="${AUTOGRADER_DEPS:-}"
say() { echo "setup.sh: $*"; }

if [ ! -f "$src/tools/grade.py" ] || [ ! -f "$src/requirements.txt" ] ||
  [ ! -f "$src/requirements-test.txt" ]; then
  echo "setup.sh: the course is not at the root of $src (is it one folder" \
    "deeper?). Build the zip with tools/gradescope/make_zip.py." >&2
  exit 2
fi
torch="$(grep -E '^torch==' "$src/requirements.txt")"
# the grader's own library (look-alike learner ids), pinned with the test tools
grader="$(grep -E '^confusable-homoglyphs==' "$src/requirements-test.txt")"

if [ -z "$deps" ]; then
  say "[1/4] system packages: python3-venv, bubblewrap (the grader's sandbox)"
  if command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && apt-get install -y -qq python3-venv bubblewrap >/dev/null; } ||
      say "apt-get could not install them: grading runs without the sandbox"
  fi
else
  say "[1/4] system packages: skipped (AUTOGRADER_DEPS is set)"
fi

say "[2/4] a virtual environment in $venv"
# with AUTOGRADER_DEPS, pip and setuptools come from there too
"$python3" -m venv ${deps:+--without-pip} "$venv"
pip=("$venv/bin/python" -m pip --quiet --quiet)

if [ -z "$deps" ]; then
  cpu="${TORCH_INDEX-https://download.pytorch.org/whl/cpu}"
  say "[3/4] $torch, PyTorch's CPU build (from $cpu if it answers)"
  index="$("$python3" "$src/tools/torch_index.py" "$cpu")"
  "${pip[@]}" install --upgrade pip
  "${pip[@]}" install --no-deps ${index:+--index-url "$index"} "$torch"
  say "[4/4] the course package and what grading needs (pyproject.toml's dependencies)"
  "${pip[@]}" install "$torch" "$grader" -e "$src"
else
  say "[3/4] dependencies from $deps (AUTOGRADER_DEPS: nothing downloaded)"
  purelib="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$deps" >"$purelib/autograder-deps.pth"
  say "[4/4] the course package (editable, from $src)"
  "${pip[@]}" install --no-deps --no-build-isolation --no-index -e "$src"
fi

# the grader must import the course from source/, torch, and run a kernel
"$venv/bin/python" - "$src" <<'PY'
import sys
from pathlib import Path

import confusable_homoglyphs, helpers, ipykernel, nbclient, torch  # noqa: E401

src = Path(sys.argv[1]).resolve()
where = Path(helpers.__file__).resolve()
if src not in where.parents:
    sys.exit(f"setup.sh: helpers comes from {where}, not from {src}")
print(f"setup.sh: ready (torch {torch.__version__}, helpers from {where.parent})")
PY
