"""Fixtures of the Python client tests: one real latpred-server for the whole session.

Run by ctest (tests/python/CMakeLists.txt): python_client with PYTHONPATH on the package
the CMake target latpred_python assembled, python_wheel (run_installed.py) on its wheel
installed in a fresh venv; LATPRED_SERVER_BIN is the server binary and LATPRED_CLI_BIN
the C++ CLI (test_cli.py compares their output).
By hand:
    PYTHONPATH=build/client/python LATPRED_SERVER_BIN=build/server/latpred-server \\
        /usr/bin/python3 -m pytest -c tests/python/pytest.ini tests/python
"""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

import pytest

import latpred

# ctest python_wheel (run_installed.py) runs these tests on the installed wheel: latpred
# must come from its venv, not from the build tree.
_INSTALLED = os.environ.get("LATPRED_EXPECT_INSTALLED")
if _INSTALLED and not Path(latpred.__file__).resolve().is_relative_to(Path(_INSTALLED).resolve()):
    raise RuntimeError(f"latpred was imported from {latpred.__file__}, not from the venv "
                       f"{_INSTALLED} the wheel was installed into")

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = REPO / "data"
EXAMPLE = REPO / "examples" / "nas_search.py"
MAX_BATCH = 100
# First start imports the bundled data and trains both base models (5 epochs here).
START_TIMEOUT_S = float(os.environ.get("LATPRED_TEST_START_TIMEOUT", "600"))


@dataclass
class Server:
    target: str
    port: int
    data_dir: Path
    log: Path
    process: "subprocess.Popen[bytes]"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _start_server(base: Path, epochs: int = 5, args: Sequence[str] = (),
                  data_dir: Optional[Path] = None) -> Server:
    """Starts latpred-server on a free port of 127.0.0.1; returns once the port is known."""
    binary = os.environ.get("LATPRED_SERVER_BIN")
    if not binary or not os.access(binary, os.X_OK):
        # An error, not a skip: a run that tests nothing must not pass.
        raise RuntimeError(f"LATPRED_SERVER_BIN={binary!r} is not an executable latpred-server "
                           f"(ctest sets it; by hand point it at build/server/latpred-server)")
    data_dir = data_dir if data_dir is not None else base / "store"
    stdout = base / "server.stdout"
    log = base / "server.stderr"
    environment = {k: v for k, v in os.environ.items() if k != "LATPRED_TOKEN"}
    with open(stdout, "wb") as out, open(log, "wb") as err:
        process = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
             "--epochs", str(epochs), "--threads", "2", "--max-batch", str(MAX_BATCH), *args],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=environment)
    server = Server("", 0, data_dir, log, process)
    deadline = time.monotonic() + 120
    while True:
        match = re.search(r"latpred-server listening on port (\d+)", stdout.read_text())
        if match:
            server.port = int(match.group(1))
            server.target = f"127.0.0.1:{server.port}"
            return server
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(server)
            raise RuntimeError(f"latpred-server did not report its port "
                               f"(exit {process.returncode}):\n{server.log_tail()}")
        time.sleep(0.05)


def copy_store(server: Server, data_dir: Path) -> Path:
    """A consistent copy of a running server's store (SQLite online backup): a server
    started on it loads the trained models instead of training again."""
    data_dir.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{server.data_dir / 'latpred.db'}?mode=ro", uri=True)
    target = sqlite3.connect(data_dir / "latpred.db")
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    return data_dir


def make_certificate(directory: Path) -> Tuple[Path, Path]:
    """A self-signed (key, certificate) for localhost and 127.0.0.1, made by openssl."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=120)
    return key, cert


def _stop(server: Server) -> int:
    """SIGTERM, then SIGKILL after 60 s; the exit status (negative: killed by a signal)."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = _start_server(tmp_path_factory.mktemp("latpred-server"))
    started = time.monotonic()
    try:
        with latpred.Client(server.target) as client:
            client.wait_until_serving(timeout=START_TIMEOUT_S)
    except BaseException:
        _stop(server)
        raise RuntimeError(f"latpred-server is not SERVING after {START_TIMEOUT_S:g} s:\n"
                           f"{server.log_tail()}") from None
    print(f"\nlatpred-server on {server.target}: SERVING after "
          f"{time.monotonic() - started:.1f} s")
    yield server
    # The exit status is not checked here: test_security.py is about shutdown.
    _stop(server)


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[latpred.Client]:
    with latpred.Client(server.target, timeout=60) as c:
        yield c


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # pytest exits 5 when it collected nothing. ctest counts any non-zero exit as a
    # failure and no SKIP_RETURN_CODE is set; say so loudly as well.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("\nERROR: no tests were collected: the Python client is untested")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    # Nothing here is meant to be skipped: a skip means a test did not run.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped and session.exitstatus == pytest.ExitCode.OK:
        print(f"\nERROR: {skipped} tests were skipped; every test must run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
