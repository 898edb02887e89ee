#!/usr/bin/env bash
# Gradescope autograder image: install the course (run once when the image is built).
# Upload a zip of this folder's two files, with the course repository beside them as
# source/ (Gradescope unpacks the zip into /autograder/source).
set -euo pipefail
apt-get update -qq && apt-get install -y -qq python3-venv bubblewrap >/dev/null || true
cd /autograder/source
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q -r requirements.txt
