"""Optional third-party libraries, imported on demand.

learn2learn is only the reference that our MAML is checked against (tests, benchmarks, one notebook
comparison); the library itself never imports it at import time.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from types import ModuleType


def import_learn2learn() -> ModuleType:
    """Import and return ``learn2learn`` without the noise its dependencies make on import.

    learn2learn 0.2.0 imports the unmaintained ``gym``, which prints a deprecation banner to stderr
    and raises deprecation warnings; both are swallowed here so notebook outputs stay clean.

    Raises:
        ImportError: learn2learn is not installed (``make setup`` builds it for the course).
    """
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            import learn2learn
        except ImportError as error:
            raise ImportError(
                "learn2learn is not installed; run `make setup` (it builds learn2learn 0.2.0 "
                "for this Python) or `pip install learn2learn`") from error
    return learn2learn
