"""The two ways of installing the course (pip via the Makefile, conda via environment.yml) agree."""

from __future__ import annotations

import re
import subprocess
import sys

import tomllib
import yaml

from conftest import REPO_ROOT

CONDA_TO_PYPI = {"pytorch": "torch"}
NOT_PACKAGES = {"python", "pip"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pip_side = {_name(r) for r in project["dependencies"]}
    pip_side |= {_name(r) for r in project["optional-dependencies"]["course"]}

    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    conda_side = set()
    for entry in env["dependencies"]:
        if isinstance(entry, str):
            conda_side.add(CONDA_TO_PYPI.get(_name(entry), _name(entry)))
    conda_side -= NOT_PACKAGES

    # learn2learn is the one package conda users install by the documented post-step.
    assert pip_side - conda_side == {"learn2learn"}, pip_side ^ conda_side
    assert conda_side <= pip_side, conda_side - pip_side
    assert "tools/install_learn2learn.py" in (REPO_ROOT / "environment.yml").read_text()


def test_library_imports_without_learn2learn():
    """fewshot_course must not need learn2learn: import it with learn2learn made unimportable."""
    code = ("import sys; sys.modules['learn2learn'] = None\n"
            "import fewshot_course, fewshot_course.data, fewshot_course.maml\n"
            "import fewshot_course.methods, fewshot_course.evaluation, fewshot_course.training\n"
            "print(fewshot_course.device())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in {"cpu", "cuda", "mps"}


def test_ci_runs_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    assert "make test" in ci
