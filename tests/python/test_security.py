"""TLS and bearer tokens against a real latpred-server, and its shutdown.

The servers here start on a copy of the session server's store (conftest.copy_store),
so they load its trained models in seconds instead of training again.
"""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Iterator, Tuple

import grpc
import pytest

import latpred

from conftest import Server, _start_server, _stop, copy_store, make_certificate

TOKEN = "py-test-token-0123456789"
GOOD = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


@pytest.fixture(autouse=True)
def no_token_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LATPRED_TOKEN", raising=False)
    monkeypatch.delenv("LATPRED_TOKEN_FILE", raising=False)


@pytest.fixture(scope="module")
def secure(server: Server, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Tuple[Server, Path]]:
    """A second server with --tls-cert/--tls-key and --token-file; yields it and the CA."""
    base = tmp_path_factory.mktemp("secure-server")
    key, cert = make_certificate(base)
    token_file = base / "token"
    token_file.write_text(TOKEN + "\n")
    secure = _start_server(base, data_dir=copy_store(server, base / "store"),
                           args=["--tls-cert", str(cert), "--tls-key", str(key),
                                 "--token-file", str(token_file)])
    try:
        with latpred.Client(secure.target, ca=cert, timeout=60) as client:
            client.wait_until_serving(timeout=120)
        yield secure, cert
    finally:
        _stop(secure)


def test_tls_with_token_allows_writes(secure: Tuple[Server, Path]) -> None:
    server, ca = secure
    with latpred.Client(server.target, ca=ca, token=TOKEN) as client:
        assert client.health() == "SERVING"
        assert client.register("py-secure").created
        result = client.submit("py-secure", "nb201", [(i, 10.0 + i) for i in range(5)])
        assert result.accepted == 5
        assert client.adapt("py-secure", "nb201").state == latpred.ModelState.ADAPTED
        assert len(client.predict("py-secure", "nb201", range(150))) == 150


def test_reads_need_no_token(secure: Tuple[Server, Path]) -> None:
    server, ca = secure
    with latpred.Client(server.target, ca=ca) as client:
        assert "pixel2" in {d.name for d in client.devices()}
        assert len(client.predict("pixel2", "nb201", [0, 1])) == 2


def test_writes_without_token_are_unauthenticated(secure: Tuple[Server, Path]) -> None:
    server, ca = secure
    with latpred.Client(server.target, ca=ca) as client:
        for write in (lambda: client.register("py-nobody"),
                      lambda: client.submit("pixel2", "nb201", [(GOOD, 1.0)]),
                      lambda: client.adapt("pixel2", "nb201")):
            with pytest.raises(latpred.Unauthenticated, match="needs a bearer token") as info:
                write()
            assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(latpred.NotFound):
            client.device("py-nobody")  # nothing was written


def test_wrong_token_is_unauthenticated(secure: Tuple[Server, Path]) -> None:
    server, ca = secure
    with latpred.Client(server.target, ca=ca, token="not-the-token") as client:
        with pytest.raises(latpred.Unauthenticated, match="wrong bearer token"):
            client.register("py-intruder")
        # A wrong token is refused on reads too, rather than ignored.
        with pytest.raises(latpred.Unauthenticated):
            client.devices()


def test_token_from_environment(secure: Tuple[Server, Path], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    server, ca = secure
    monkeypatch.setenv("LATPRED_TOKEN", TOKEN)
    with latpred.Client(server.target, ca=ca) as client:
        assert client.register("py-env").device.name == "py-env"
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}  \nsecond line\n")
    monkeypatch.setenv("LATPRED_TOKEN", "wrong")
    monkeypatch.setenv("LATPRED_TOKEN_FILE", str(token_file))  # the file wins
    assert latpred.token_from_environment() == TOKEN
    with latpred.Client(server.target, ca=ca) as client:
        assert not client.register("py-env").created
    with latpred.Client(server.target, ca=ca, token="") as client:  # "" sends none
        with pytest.raises(latpred.Unauthenticated, match="needs a bearer token"):
            client.register("py-env")
    monkeypatch.setenv("LATPRED_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(OSError, match="cannot read LATPRED_TOKEN_FILE"):
        latpred.Client(server.target, ca=ca)


def test_token_a_header_cannot_carry_is_refused_without_showing_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # gRPC cannot send a header value with a control character; the client says so
    # before any call, naming where the token came from and never the token.
    secret = "py-s3cret-value"
    for bad in (secret + "\n", "py-s3cret\x01value", "py-s3cret value", "py-s3cr\u00e9t"):
        monkeypatch.setenv("LATPRED_TOKEN", bad)
        with pytest.raises(ValueError, match="token from LATPRED_TOKEN holds") as error:
            latpred.Client("127.0.0.1:1")
        assert "py-s3cr" not in str(error.value)
        monkeypatch.delenv("LATPRED_TOKEN")
        with pytest.raises(ValueError, match="token argument") as error:
            latpred.Client("127.0.0.1:1", token=bad)
        assert "py-s3cr" not in str(error.value)
    token_file = tmp_path / "token"
    token_file.write_bytes(b"py-s3cret\x07value\n")
    monkeypatch.setenv("LATPRED_TOKEN_FILE", str(token_file))
    with pytest.raises(ValueError, match=f"LATPRED_TOKEN_FILE {token_file}") as error:
        latpred.token_from_environment()
    assert "py-s3cr" not in str(error.value)
    token_file.write_bytes(b"  py-good-token \n")
    assert latpred.token_from_environment() == "py-good-token"


def test_plaintext_client_against_tls_server_is_unavailable(secure: Tuple[Server, Path]) -> None:
    server, _ = secure
    with latpred.Client(server.target, timeout=5) as client:
        with pytest.raises(latpred.Unavailable) as info:
            client.devices()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_tls_client_with_another_ca_is_unavailable(secure: Tuple[Server, Path],
                                                   tmp_path: Path) -> None:
    server, _ = secure
    _, other_ca = make_certificate(tmp_path)
    with latpred.Client(server.target, ca=other_ca, timeout=5) as client:
        with pytest.raises(latpred.Unavailable):
            client.devices()


def test_server_exits_cleanly_on_sigterm(server: Server, tmp_path: Path) -> None:
    victim = _start_server(tmp_path, data_dir=copy_store(server, tmp_path / "store"))
    try:
        with latpred.Client(victim.target) as client:
            client.wait_until_serving(timeout=120)
        victim.process.send_signal(signal.SIGTERM)
        code = victim.process.wait(timeout=60)
    finally:
        _stop(victim)
    assert code == 0, f"exit {code}:\n{victim.log_tail()}"
    assert "shutting down" in victim.log.read_text()
