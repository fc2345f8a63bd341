"""Fetch a release file safely: verify its md5 while writing a temporary file, then rename it.

Whatever goes wrong (no network, a refused connection, a connection cut mid-file, a wrong md5),
no partial file is left where the real one belongs, and the error names the URL, the expected
md5 and the path where a manually downloaded copy should go.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from fewshot_course.progress import progress

__all__ = ["DownloadError", "download_file", "ensure_file", "md5_of", "check_md5"]

CHUNK = 1 << 16


class DownloadError(OSError):
    """A download failed; the message says what to fetch by hand and where to put it."""


def md5_of(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _manual_fix(url: str, md5: str, path: Path) -> str:
    return (f"download {url} yourself (md5 {md5}) and save it as {path}, or retry with "
            "download=True")


def download_file(url: str, path: str | Path, md5: str, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``path`` if and only if its md5 is ``md5``.

    The bytes go to a temporary file in the same folder, hashed as they arrive; the file is
    renamed to ``path`` (atomic on one file system) only when complete and matching.

    Raises:
        DownloadError: the server cannot be reached, the transfer ends early, or the md5 differs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        digest, received = hashlib.md5(), 0
        with (os.fdopen(handle, "wb") as out,
              urllib.request.urlopen(url, timeout=timeout) as response):
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None else None
            with progress(total=expected, unit="B", unit_scale=True, desc=path.name) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if expected is not None and received != expected:
            raise DownloadError(f"the connection closed after {received} of {expected} bytes of "
                                f"{url}; nothing was saved at {path}; "
                                + _manual_fix(url, md5, path))
        actual = digest.hexdigest()
        if actual != md5:
            raise DownloadError(f"{url} has md5 {actual}, expected {md5}; the file was not saved "
                                f"at {path}; " + _manual_fix(url, md5, path))
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the data file is not secret
        os.replace(temporary, path)
        return path
    except DownloadError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        if isinstance(error, urllib.error.HTTPError):
            reason = f"the server answered HTTP {error.code} {error.reason}"
        elif isinstance(error, urllib.error.URLError):
            reason = f"{error.reason}; no network?"
        else:
            reason = f"{type(error).__name__}: {error}"
        raise DownloadError(f"could not download {url} ({reason}); nothing was saved at {path}; "
                            + _manual_fix(url, md5, path)) from error
    finally:
        Path(temporary).unlink(missing_ok=True)


def ensure_file(path: str | Path, url: str, md5: str, *, download: bool) -> Path:
    """``path`` if it exists; else download it (``download=True``) or say how to get it."""
    path = Path(path)
    if path.exists():
        return path
    if download:
        return download_file(url, path, md5)
    raise FileNotFoundError(f"{path} not found; pass download=True to fetch {url}, or "
                            f"download it yourself (md5 {md5}) and save it as {path}")


def check_md5(path: Path, url: str, md5: str) -> None:
    """Raise ValueError if the file at ``path`` is not the release file (md5 ``md5``)."""
    actual = md5_of(path)
    if actual != md5:
        raise ValueError(f"{path} has md5 {actual}, but the release file {url} has md5 {md5}; "
                         f"delete {path} and pass download=True, or download it again yourself")
