"""Helpers for the browser test: a throw-away JupyterLab server and a headless Chromium.

`JupyterLabServer` serves a folder from the project's own environment on 127.0.0.1 with a random
port and token, keeps every piece of Jupyter state (runtime files, settings, workspaces, the
user's config and kernels) in a temporary folder, and is always shut down, kernels included.
`launch_chromium` starts Debian's Chromium through Playwright with a fresh profile; when that is
impossible it raises `ChromiumUnavailable` carrying the reason, so the test can skip saying why.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_ENV_VAR = "FEWSHOT_CHROMIUM"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-proxy-server",
    # Offline by construction: no host but 127.0.0.1 (where JupyterLab listens) resolves.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]

# JupyterLab user settings for a quiet, deterministic session: every cell stays in the DOM
# (no virtual scrolling, so all outputs can be inspected), saved cells carry their execution
# times, and nothing asks the internet for news.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none",
        "recordTiming": True,
    },
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


# The server is local: never route its API calls through a proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ChromiumUnavailable(RuntimeError):
    """Chromium is not installed here or cannot start; the message says which."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class JupyterLabServer:
    """JupyterLab on 127.0.0.1 serving `root_dir`, with all its state under `state_dir`.

    The server and its kernels see this process's environment plus `extra_environment`.

    Use as a context manager; leaving it shuts the server and its kernels down, whatever happened
    inside. The server's log goes to `log_path`.
    """

    def __init__(self, root_dir: Path, state_dir: Path, log_path: Path,
                 extra_environment: dict[str, str] | None = None) -> None:
        self.root_dir = root_dir
        self.state_dir = state_dir
        self.log_path = log_path
        self.extra_environment = dict(extra_environment or {})
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.startup_s: float | None = None  # seconds until the REST API answered
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    def url(self, path: str) -> str:
        """The address of `path` (starting with /) on this server, with the token."""
        separator = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{separator}token={self.token}"

    def _environment(self) -> dict[str, str]:
        settings_dir = self.state_dir / "settings"
        for relative_path, values in LAB_SETTINGS.items():
            settings_file = settings_dir / relative_path
            settings_file.parent.mkdir(parents=True, exist_ok=True)
            settings_file.write_text(json.dumps(values))
        directories = {
            "JUPYTER_RUNTIME_DIR": "runtime",
            "JUPYTER_CONFIG_DIR": "config",
            "JUPYTER_DATA_DIR": "data",
            "JUPYTERLAB_SETTINGS_DIR": "settings",
            "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
            "IPYTHONDIR": "ipython",
        }
        environment = {**os.environ, **self.extra_environment}
        for variable, name in directories.items():
            (self.state_dir / name).mkdir(parents=True, exist_ok=True)
            environment[variable] = str(self.state_dir / name)
        # The project's environment first, so that the kernel is the project's Python too.
        environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
        environment.pop("JUPYTER_TOKEN", None)
        environment.pop("JUPYTER_PORT", None)
        return environment

    def start(self, timeout: float = 90.0) -> None:
        """Start the server and wait until its REST API answers."""
        command = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.terminals_enabled=False",
            f"--LabApp.user_settings_dir={self.state_dir / 'settings'}",
            f"--LabApp.workspaces_dir={self.state_dir / 'workspaces'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
            command.append("--allow-root")
        environment = self._environment()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("wb")
        # A session of its own, so that stopping it can reach the kernels it started as well.
        self._process = subprocess.Popen(
            command, cwd=self.root_dir, env=environment, stdout=self._log_file,
            stderr=subprocess.STDOUT, start_new_session=True)
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with code {self._process.returncode} while starting; "
                    f"see its log {self.log_path}")
            try:
                self.api("/api/status")
                self.startup_s = time.monotonic() - started
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s; see {self.log_path}")

    def api(self, path: str, method: str = "GET") -> Any:
        """Call the Jupyter REST API; the decoded JSON answer (None when empty)."""
        request = urllib.request.Request(
            self.base_url + path, method=method,
            headers={"Authorization": f"token {self.token}"})
        with _NO_PROXY.open(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernel_state(self, notebook_path: str) -> str | None:
        """`execution_state` of the kernel of the session on `notebook_path` (None: no session)."""
        for session in self.api("/api/sessions"):
            if session.get("path") == notebook_path and session.get("kernel"):
                kernel = self.api(f"/api/kernels/{session['kernel']['id']}")
                return kernel.get("execution_state")
        return None

    def stop(self) -> None:
        """Shut down politely (kernels first), then terminate, then kill."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            try:
                self.api("/api/shutdown", method="POST")
                process.wait(timeout=15)
            except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
                pass
        for stop_signal in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            os.killpg(process.pid, stop_signal)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue
        # Kernels it started live in the same process group; none may outlive the test.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log_file.close()
        self._process = None

    def __enter__(self) -> JupyterLabServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def chromium_executable() -> Path:
    """Chromium to drive: $FEWSHOT_CHROMIUM, else `chromium` / `chromium-browser` on the PATH."""
    configured = os.environ.get(CHROMIUM_ENV_VAR)
    if configured:
        if not Path(configured).is_file():
            raise ChromiumUnavailable(f"${CHROMIUM_ENV_VAR}={configured} does not exist")
        return Path(configured)
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return Path(found)
    if Path("/usr/bin/chromium").is_file():
        return Path("/usr/bin/chromium")
    raise ChromiumUnavailable(
        "Chromium is not installed (no `chromium` on the PATH); install Debian's `chromium` "
        f"(`bash tools/ensure_chromium.sh` does) or point ${CHROMIUM_ENV_VAR} at a Chromium")


def launch_chromium(playwright: Any, profile_dir: Path) -> Any:
    """A headless Chromium browser context with a fresh profile in `profile_dir`.

    Raises `ChromiumUnavailable` with the reason when Chromium is missing or fails to start.
    """
    executable = chromium_executable()
    try:
        return playwright.chromium.launch_persistent_context(
            str(profile_dir), executable_path=str(executable), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
    except Exception as error:  # Playwright raises its own Error for every kind of failed launch
        raise ChromiumUnavailable(
            f"Chromium at {executable} failed to start: {_launch_failure_summary(error)}"
        ) from error


def _launch_failure_summary(error: Exception) -> str:
    """Playwright's first line plus what Chromium itself wrote to stderr (its last lines)."""
    lines = str(error).splitlines()
    # Playwright repeats the browser's log in its call log; keep each line once.
    browser_errors = list(dict.fromkeys(
        line.strip().removeprefix("- ") for line in lines if "[err]" in line))
    return "\n".join(lines[:1] + browser_errors[-5:])
