"""The README's `jupyter lab notebooks/` works from the README's environment: JupyterLab starts
headless, its REST API lists the notebooks, and (jupytext being installed) a notebook saved through
JupyterLab rewrites its paired `.py` source too."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 60


def jupyter_command() -> list[str]:
    """`jupyter` of this interpreter's environment (the venv the README creates)."""
    if importlib.util.find_spec("jupyterlab") is None:
        pytest.skip("jupyterlab is not installed (pip install -r requirements.txt installs it)")
    launcher = shutil.which("jupyter", path=str(Path(sys.executable).parent))
    return [launcher] if launcher else [sys.executable, "-m", "jupyter"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running `jupyter lab` and the calls the tests make to its REST API."""

    def __init__(self, proc: subprocess.Popen, port: int, token: str, log: Path):
        self.proc, self.base, self.token, self.log = proc, f"http://127.0.0.1:{port}", token, log

    def request(self, path: str, method: str = "GET", body: dict | None = None) -> dict | list:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        req = urllib.request.Request(f"{self.base}{path}", data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def wait_for(self, path: str) -> dict | list:
        """Poll ``path`` until the server answers; fail with its log if it dies or takes too long."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                return self.request(f"{path}?token={self.token}")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"jupyter lab did not answer within {STARTUP_TIMEOUT_S} s:\n{self.log.read_text()[-3000:]}"
                    )
                time.sleep(0.5)


@contextlib.contextmanager
def jupyter_lab(root: Path, tmp: Path) -> Iterator[Lab]:
    """Start `jupyter lab` headless on a free local port with a random token; stop it afterwards."""
    cmd = jupyter_command()
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }  # nothing written to the home folder
    log = tmp / "jupyter_lab.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                *cmd,
                "lab",
                "--no-browser",
                f"--port={port}",
                "--ServerApp.ip=127.0.0.1",
                "--ServerApp.port_retries=0",
                f"--ServerApp.token={token}",
                f"--ServerApp.root_dir={root}",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",  # offline: no update check
                *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
            ],  # CI runs as root
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        yield Lab(proc, port, token, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def test_jupyter_lab_serves_the_notebooks(tmp_path):
    with jupyter_lab(REPO, tmp_path) as lab:
        listing = lab.wait_for("/api/contents/notebooks")
        assert listing["type"] == "directory"
        served = {item["name"]: item["type"] for item in listing["content"]}
        expected = {p.name for p in (REPO / "notebooks").glob("*.ipynb")}
        assert expected and expected <= set(served), f"missing: {expected - set(served)}"
        assert all(served[name] == "notebook" for name in expected)
        # the paired .py sources open as notebooks too (jupytext's contents manager is active)
        nb = lab.request("/api/contents/notebooks/01_ecker.py?type=notebook&content=1")
        ipynb = lab.request("/api/contents/notebooks/01_ecker.ipynb?content=1")
        assert [c["source"] for c in nb["content"]["cells"]] == [c["source"] for c in ipynb["content"]["cells"]]


def test_saving_a_notebook_in_jupyter_lab_updates_its_py(tmp_path):
    """What a user does in JupyterLab: save the .ipynb; jupytext writes the paired .py as well."""
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    for suffix in (".ipynb", ".py"):
        shutil.copy(REPO / "notebooks" / f"00_benchmark{suffix}", root / "notebooks")
    with jupyter_lab(root, tmp_path) as lab:
        lab.wait_for("/api/contents/notebooks")
        model = lab.request("/api/contents/notebooks/00_benchmark.ipynb?content=1")
        model["content"]["cells"][-1]["source"] += "\nprint('saved in JupyterLab')"
        lab.request(
            "/api/contents/notebooks/00_benchmark.ipynb",
            "PUT",
            {"type": "notebook", "format": "json", "content": model["content"]},
        )
    assert "print('saved in JupyterLab')" in (root / "notebooks" / "00_benchmark.py").read_text()
