"""Checks learners call after each exercise (``from helpers import checks``): one
aligned line per output verified (rules: ``_core``).  Every lesson's public checks
(its module's ``__all__``) are imported here, so adding a lesson adds its checks."""

from importlib import import_module

from .. import course
from . import _core

# _core's public names (from helpers.checks import report), then each lesson's
__all__ = ["CheckFailed", "Report", "Result", "abs_error", "mine_or_reference"]
__all__ += ["rel_error", "report"]
globals().update({_name: getattr(_core, _name) for _name in __all__})
BY_LESSON: dict[str, tuple[str, ...]] = {}  # lesson number -> its public checks
for _lesson in [x for x in course.LESSONS if x.checks_module is not None]:
    _module = import_module(f".{_lesson.checks_module}", __name__)
    BY_LESSON[_lesson.number] = tuple(_module.__all__)
    for _name in _module.__all__:
        if _name in globals():
            raise ImportError(f"two lessons define the check {_name!r}")
        globals()[_name] = getattr(_module, _name)
        __all__.append(_name)
del _lesson, _module, _name
