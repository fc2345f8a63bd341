"""Checks for the course's exercises: one module per notebook (``nb01`` for notebook 01, ...).

Each ``check_k(answer)`` tests the learner's answer for real properties (agreement with the
library, numerical tolerances, invariants), raises an AssertionError that says what is wrong, and
prints a ✓ line when everything holds. The notebooks run every check on the reference solution
too, so the course's test run proves that each solution passes.
"""


def passed(message: str) -> None:
    """Print the friendly success line every check ends with."""
    print(f"✓ {message}")
