"""Interactive notebook widgets (ipywidgets), one submodule per notebook topic.

Each widget is an ordinary function that builds and returns an ipywidgets container; the
notebooks call it once with its defaults, so a headless run exercises the same code. Import a
widget from its submodule, for example::

    from fewshot_course.widgets.episodes import episode_explorer        # notebook 01
    from fewshot_course.widgets.maml_math import inner_loop_explorer    # notebook 02

``fewshot_course.widgets.<name>`` also works for any name in the ``__all__`` of a submodule of
this package: the submodules are imported on first access only, so importing
``fewshot_course.widgets`` stays cheap and needs no list of names kept in step here.
"""

from __future__ import annotations

import importlib
import pkgutil


def _submodules() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules(__path__)
                  if not info.name.startswith("_"))


def __getattr__(name: str):
    if name.startswith("_"):
        raise AttributeError(name)
    for module_name in _submodules():
        module = importlib.import_module(f"{__name__}.{module_name}")
        if name == module_name:
            return module
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}; widgets live in the "
                         f"submodules {', '.join(_submodules())}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_submodules()))
