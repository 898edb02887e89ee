"""Which files the package ships; everything else is in pyproject.toml.

Two things pyproject.toml alone cannot say:

* every subpackage of ``helpers`` is found (``find_packages``), so a new one can
  never be left out of a non-editable install (``helpers/checks`` once was, and
  every notebook stopped in its setup cell on Colab);
* the course's ``data/`` folder ships inside the package as ``helpers/_data``,
  so an install from a wheel or from git (Colab's setup cell) finds the data
  with no clone and no setting.  The checkout keeps ``data/`` at the top, where
  authors and the tests expect it; an editable install reads it from there.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def data_packages() -> dict[str, str]:
    """``helpers._data`` and one package name per folder below ``data/``."""
    folders = [DATA] + sorted(p for p in DATA.rglob("*") if p.is_dir())
    names = {}
    for folder in folders:
        parts = folder.relative_to(DATA).parts
        if any(part.startswith((".", "_")) for part in parts):
            continue
        names[".".join(("helpers", "_data", *parts))] = folder.relative_to(HERE)
    return {name: str(path) for name, path in names.items()}


DATA_PACKAGES = data_packages()

setup(
    packages=find_packages(include=["helpers", "helpers.*"]) + list(DATA_PACKAGES),
    package_dir={"helpers._data": "data"},
    package_data={"helpers": ["*.mplstyle"], **{name: ["*"] for name in DATA_PACKAGES}},
    include_package_data=False,
)
