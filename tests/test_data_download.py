"""md5-verified downloads against a local HTTP server: never a partial or unverified file."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
from test_data_helpers import write_omniglot_zip

from fewshot_course.data import DownloadError, Omniglot, download_file
from fewshot_course.data import omniglot as omniglot_module

PAYLOAD = bytes(range(256)) * 400  # 100 kB, several read chunks


class Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        if self.path.startswith("/cut/"):
            body = self.files[self.path.removeprefix("/cut")]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.files = {"/data.bin": PAYLOAD}
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def only_file_is(folder: Path, name: str | None) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ([name] if name else [])


def test_good_file_is_saved_complete(server, tmp_path):
    target = tmp_path / "data.bin"
    assert download_file(f"{server}/data.bin", target, md5(PAYLOAD)) == target
    assert target.read_bytes() == PAYLOAD
    only_file_is(tmp_path, "data.bin")


def test_wrong_md5_leaves_nothing_and_names_url_md5_and_path(server, tmp_path):
    target = tmp_path / "data.bin"
    wrong = "0" * 32
    with pytest.raises(DownloadError) as error:
        download_file(f"{server}/data.bin", target, wrong)
    message = str(error.value)
    assert f"{server}/data.bin" in message and wrong in message and str(target) in message
    assert md5(PAYLOAD) in message  # what arrived instead
    only_file_is(tmp_path, None)


def test_connection_cut_mid_file_leaves_nothing(server, tmp_path):
    target = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match=r"closed after \d+ of 102400 bytes") as error:
        download_file(f"{server}/cut/data.bin", target, md5(PAYLOAD))
    assert str(target) in str(error.value) and md5(PAYLOAD) in str(error.value)
    only_file_is(tmp_path, None)


def test_server_absent_leaves_nothing(tmp_path):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/data.bin"
    target = tmp_path / "sub" / "data.bin"
    with pytest.raises(DownloadError, match="no network") as error:
        download_file(url, target, md5(PAYLOAD), timeout=5)
    assert url in str(error.value) and str(target) in str(error.value)
    only_file_is(target.parent, None)


def test_missing_file_on_the_server(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(f"{server}/nothing.zip", tmp_path / "x.zip", md5(b""))
    only_file_is(tmp_path, None)


def test_omniglot_download_true_fetches_verifies_and_loads(server, tmp_path, monkeypatch):
    source = tmp_path / "source"
    zip_path = write_omniglot_zip(source, "images_background_small1", {"Alpha": 2, "Beta": 3})
    data = zip_path.read_bytes()
    Handler.files["/omniglot/images_background_small1.zip"] = data
    monkeypatch.setattr(omniglot_module, "OMNIGLOT_BASE_URL", f"{server}/omniglot/")
    monkeypatch.setitem(omniglot_module.OMNIGLOT_FILES, "background_small1",
                        ("images_background_small1.zip", md5(data)))
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "root"
    with pytest.raises(FileNotFoundError) as error:
        Omniglot(root, "background_small1")
    message = str(error.value)
    assert f"{server}/omniglot/images_background_small1.zip" in message
    assert md5(data) in message and str(root / "images_background_small1.zip") in message
    dataset = Omniglot(root, "background_small1", download=True)
    assert len(dataset.class_names) == 5 and len(dataset) == 5 * 20
    assert (root / "images_background_small1.zip").read_bytes() == data
    only_file_is(root, "images_background_small1.zip")


def test_omniglot_download_with_wrong_md5_leaves_no_zip(server, tmp_path, monkeypatch):
    Handler.files["/omniglot/images_evaluation.zip"] = PAYLOAD
    monkeypatch.setattr(omniglot_module, "OMNIGLOT_BASE_URL", f"{server}/omniglot/")
    root = tmp_path / "root"
    expected = omniglot_module.OMNIGLOT_FILES["evaluation"][1]
    with pytest.raises(DownloadError, match=expected):
        Omniglot(root, "evaluation", download=True)
    only_file_is(root, None)
