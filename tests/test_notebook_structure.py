"""Every course notebook follows the same shape, so students always know where things are.

Checked for each ``notebooks/NN_*.ipynb``: a valid nbformat 4 file without committed outputs;
a ``# NN · Title`` cell; the sections Learning objectives, Prerequisites (not for the setup check),
Summary and Exercises in that order; a first code cell that sets ``%matplotlib inline`` and calls
``seed_everything(0)``; and at least two exercises, each made of an ``### Exercise k`` cell, an
``exercise`` cell defining ``answer_k``, a collapsed ``solution`` cell defining ``solution_k`` and
a ``check`` cell calling ``check_k`` (defined in ``notebooks/checks/nbNN.py``) on both.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from conftest import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
SETUP_CHECK = "00_setup_check.ipynb"
SECTIONS = ["Learning objectives", "Prerequisites", "Summary", "Exercises"]
CJK = re.compile(r"[\u4e00-\u9fff]")


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def _headings(cell, level: int) -> list[str]:
    prefix = "#" * level + " "
    return [line[len(prefix):].strip() for line in cell.source.splitlines()
            if line.startswith(prefix)]


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _is_light(path: Path) -> bool:
    return path.name == SETUP_CHECK


def test_the_course_notebooks_are_there():
    names = _ids(NOTEBOOKS)
    assert SETUP_CHECK in names, names
    assert "01_task_definition.ipynb" in names and "02_maml_math.ipynb" in names, names
    numbers = [int(name[:2]) for name in names]
    assert len(set(numbers)) == len(numbers), f"two notebooks share a number: {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_valid_nbformat_without_outputs(path: Path):
    notebook = _read(path)
    assert notebook.nbformat == 4
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index} has committed outputs; clear them"
            assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_title_and_sections_in_order(path: Path):
    notebook = _read(path)
    first = notebook.cells[0]
    assert first.cell_type == "markdown", f"{path.name}: the first cell must be the title"
    title = first.source.splitlines()[0]
    assert re.fullmatch(rf"# {path.name[:2]} · \S.*", title), (
        f"{path.name}: the first line must be '# {path.name[:2]} · Title', not {title!r}")
    motivation = first.source.split("\n", 1)[1].strip() if "\n" in first.source else ""
    assert len(motivation.split()) >= 20, f"{path.name}: the title needs a motivation paragraph"

    wanted = [s for s in SECTIONS if not (_is_light(path) and s in {"Prerequisites", "Exercises"})]
    found = [heading for cell in notebook.cells if cell.cell_type == "markdown"
             for heading in _headings(cell, 2)]
    positions = []
    for section in wanted:
        assert section in found, f"{path.name}: missing the section '## {section}' (found {found})"
        positions.append(found.index(section))
    assert positions == sorted(positions), f"{path.name}: sections out of order: {found}"

    objectives = _section_text(notebook, "Learning objectives")
    assert sum(line.lstrip().startswith(("-", "*")) for line in objectives.splitlines()) >= 2, (
        f"{path.name}: list the learning objectives as bullets")
    if not _is_light(path):
        assert re.search(r"\b\d\d_\w+", _section_text(notebook, "Prerequisites")), (
            f"{path.name}: name the earlier notebook in Prerequisites, e.g. 01_task_definition")
        markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
        assert CJK.search(markdown), f"{path.name}: give the Chinese term beside each key term"


def _section_text(notebook, section: str) -> str:
    """The markdown from '## section' up to the next level-2 heading."""
    text, inside = [], False
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if line.startswith("## "):
                inside = line[3:].strip() == section
                continue
            if inside:
                text.append(line)
    return "\n".join(text)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_first_code_cell_seeds_and_sets_inline_plots(path: Path):
    code = [c for c in _read(path).cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code"
    source = code[0].source
    assert "%matplotlib inline" in source, (
        f"{path.name}: the first code cell must set %matplotlib inline")
    assert re.search(r"seed_everything\(\s*(seed\s*=\s*)?0\s*\)", source), (
        f"{path.name}: the first code cell must call fewshot_course.seed_everything(0)")


def _exercises(notebook) -> list[tuple[int, list]]:
    """(k, [the cells from '### Exercise k' up to the next exercise or level-2 heading])."""
    groups: list[tuple[int, list]] = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            match = re.match(r"### Exercise (\d+)\b", cell.source.lstrip())
            if match:
                groups.append((int(match.group(1)), []))
                continue
            if _headings(cell, 2):
                groups.append((-1, []))  # a new section ends the current exercise
                continue
        if groups:
            groups[-1][1].append(cell)
    return [(k, cells) for k, cells in groups if k > 0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_exercises_have_exercise_solution_and_check_cells(path: Path):
    notebook = _read(path)
    exercises = _exercises(notebook)
    if _is_light(path) and not exercises:
        return
    assert len(exercises) >= 2, f"{path.name}: at least two exercises are needed"
    numbers = [k for k, _ in exercises]
    assert numbers == list(range(1, len(numbers) + 1)), f"{path.name}: exercises numbered {numbers}"

    markdown = [(i, c.source) for i, c in enumerate(notebook.cells) if c.cell_type == "markdown"]
    exercise_heading = next(i for i, text in markdown if "## Exercises" in text.splitlines())
    first_exercise = next(i for i, text in markdown if text.lstrip().startswith("### Exercise"))
    assert first_exercise > exercise_heading, f"{path.name}: exercises belong under '## Exercises'"

    module = NOTEBOOK_DIR / "checks" / f"nb{path.name[:2]}.py"
    assert module.exists(), f"{path.name}: its checks live in {module.relative_to(REPO_ROOT)}"
    defined = {node.name for node in ast.parse(module.read_text()).body
               if isinstance(node, ast.FunctionDef)}

    for k, cells in exercises:
        where = f"{path.name} exercise {k}"
        code = [c for c in cells if c.cell_type == "code"]
        roles = [next((t for t in _tags(c) if t in {"exercise", "solution", "check"}), None)
                 for c in code]
        assert roles[:3] == ["exercise", "solution", "check"], (
            f"{where}: needs code cells tagged exercise, solution, check, in order (got {roles})")
        exercise, solution, check = code[:3]

        assert re.search(rf"\banswer_{k}\b", exercise.source), f"{where}: define answer_{k}"
        _assert_defines(exercise.source, f"answer_{k}", where)

        assert solution.metadata.get("jupyter", {}).get("source_hidden") is True, (
            f"{where}: the solution cell must be collapsed (metadata jupyter.source_hidden)")
        assert solution.source.splitlines()[0] == "# Solution (expand to see it)", (
            f"{where}: the solution cell starts with '# Solution (expand to see it)'")
        _assert_defines(solution.source, f"solution_{k}", where)

        assert re.search(rf"\bcheck_{k}\(\s*solution_{k}\s*\)", check.source), (
            f"{where}: the check cell must run check_{k}(solution_{k})")
        guarded = rf"if\s+answer_{k}\s+is\s+not\s+None\s*:[\s\S]*check_{k}\(\s*answer_{k}\s*\)"
        assert re.search(guarded, check.source), (
            f"{where}: the check cell must run check_{k}(answer_{k}) when answer_{k} is not None")
        assert f"check_{k}" in defined, f"{where}: {module.name} does not define check_{k}"


def _assert_defines(source: str, name: str, where: str) -> None:
    tree = ast.parse("\n".join(line for line in source.splitlines()
                               if not line.lstrip().startswith(("%", "!"))))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return
    raise AssertionError(f"{where}: the cell must define {name} at top level")
