"""``python -m fewshot_course {train,evaluate,benchmark}``: see ``fewshot_course.cli``."""

from fewshot_course.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
