"""latpred.aio.Client against the real server (conftest.py) and the fake one
(test_fake_server.py): the sync client's answers, 64 calls in flight, split batches,
typed errors, request ids, retries; and numpy arrays in and out of both clients."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, TypeVar

import grpc
import numpy as np
import pytest

import latpred
import latpred.aio

from conftest import MAX_BATCH, Server
from test_fake_server import fake, serve  # noqa: F401  (the fixture)

T = TypeVar("T")


def run(server: Server, body: Callable[[latpred.aio.Client], Awaitable[T]], **kwargs: Any) -> T:
    """body(client) on a fresh asyncio client of the server, in a fresh event loop."""
    async def main() -> T:
        async with latpred.aio.Client(server.target, **kwargs) as client:
            return await body(client)
    return asyncio.run(main())


def test_aio_answers_as_the_sync_client(server: Server, client: latpred.Client) -> None:
    archs = list(range(0, 15625, 61))  # 257: three chunks of max_batch 100

    async def body(a: latpred.aio.Client):
        return (await a.server_info(), await a.health(), await a.predict("pixel2", "nb201", archs),
                await a.predict("pixel2", "nb201", archs, return_details=True),
                await a.devices(), await a.device("pixel2"))

    info, health, latency, details, devices, pixel2 = run(server, body)
    assert info.max_batch == MAX_BATCH and health == "SERVING"
    assert latency == client.predict("pixel2", "nb201", archs)
    assert len(latency) == len(archs)
    assert details.latency_ms == latency and details.state == latpred.ModelState.SOURCE
    assert [d.name for d in devices] == [d.name for d in client.devices()]
    assert pixel2 == client.device("pixel2")


def test_aio_64_calls_in_flight(server: Server, client: latpred.Client) -> None:
    batches = [list(range(i * 37, i * 37 + 150)) for i in range(64)]  # each split in two
    expected = client.predict("pixel2", "nb201", range(64 * 37 + 150))

    async def body(a: latpred.aio.Client):
        await a.wait_until_serving(timeout=30)
        started = time.monotonic()
        answers = await asyncio.gather(*(a.predict("pixel2", "nb201", b) for b in batches))
        return answers, time.monotonic() - started

    answers, seconds = run(server, body)
    for batch, answer in zip(batches, answers):
        assert answer == [expected[i] for i in batch]
    print(f"64 calls of 150 architectures in flight: {seconds:.2f} s")


def test_aio_errors_are_typed(server: Server) -> None:
    async def body(a: latpred.aio.Client):
        errors = []
        for call in (a.device("no-such-device"),
                     a.predict("no-such-device", "nb201", [0]),
                     a.predict("pixel2", "nb201", [0] * 150 + ["|bad|"]),
                     a.predict("pixel2", "nb201", [0, 99999]),
                     a.suggest("pixel2", "no-such-space", 3),
                     a.predict_interval("pixel2", "nb201", [0, 1])):
            with pytest.raises(latpred.LatpredError) as info:
                await call
            errors.append(info.value)
        return errors

    device, predict, bad, index, space, interval = run(server, body)
    assert isinstance(device, latpred.NotFound) and "no-such-device" in device.message
    assert isinstance(predict, latpred.NotFound)
    # The bad item was item 50 of the second chunk: named by its place in the whole list.
    assert isinstance(bad, latpred.InvalidArgument) and bad.message.startswith("archs[150]")
    assert isinstance(index, latpred.InvalidArgument) and "archs[1]" in index.message
    assert isinstance(space, latpred.InvalidArgument)
    assert isinstance(interval, latpred.NoInterval)
    assert interval.code == grpc.StatusCode.FAILED_PRECONDITION


def test_aio_register_submit_adapt_suggest_interval(server: Server,
                                                    client: latpred.Client) -> None:
    table = latpred.Nb201Table.bundled()
    measured = [(i, client.predict("pixel3", "nb201", [i])[0] * 1.5)
                for i in range(0, 15625, 1500)]  # 11 samples

    async def body(a: latpred.aio.Client):
        created = await a.register("py-aio-dev", labels={"origin": "test_aio"})
        first = await a.submit("py-aio-dev", "nb201", measured, request_id="aio-batch-1")
        again = await a.submit("py-aio-dev", "nb201", measured, request_id="aio-batch-1")
        partial = await a.submit("py-aio-dev", "nb201", [(5, 1.0), ("|bad|", 2.0)], partial=True)
        fit = await a.adapt("py-aio-dev", "nb201")
        pending = await a.adapt("py-aio-dev", "nb201", wait=False)
        suggested = await a.suggest("py-aio-dev", "nb201", 4)
        triples = await a.predict_interval("py-aio-dev", "nb201", np.array([0, 1, 2]))
        return created, first, again, partial, fit, pending, suggested, triples

    created, first, again, partial, fit, pending, suggested, triples = run(server, body)
    assert created.created and created.device.labels == {"origin": "test_aio"}
    assert first.accepted == 11 and not first.replayed
    assert again.replayed and again.accepted == 11
    assert partial.accepted == 1 and partial.rejected == 1 and partial.results[1].error
    assert fit.state == latpred.ModelState.ADAPTED
    assert fit.fit.samples + len(fit.fit.set_aside) == 12  # (5, 1.0) may be set aside
    assert pending.pending
    assert len(suggested) == 4 and all(table.index(s) is not None for s in suggested)
    assert isinstance(triples, np.ndarray) and triples.shape == (3, 3)
    assert np.all(triples[:, 1] < triples[:, 0]) and np.all(triples[:, 0] < triples[:, 2])


def test_aio_retries_unavailable_with_the_request_id(fake) -> None:  # noqa: F811
    target, service, _ = fake
    service.submit_failures = 2

    async def body():
        async with latpred.aio.Client(target, token="", timeout=10) as a:
            return await a.submit("fake-dev", "nb201", [("a", 1.0)])

    result = asyncio.run(body())
    assert result.replayed
    ids = [r.request_id for r in service.submit_requests]
    assert len(ids) == 3 and len(set(ids)) == 1


def test_aio_unreachable_gives_up_within_its_timeout() -> None:
    server, port, _, _ = serve()
    server.stop(None)

    async def body():
        async with latpred.aio.Client(f"127.0.0.1:{port}", timeout=5) as a:
            started = time.monotonic()
            with pytest.raises(latpred.Unavailable):
                await a.devices()
            unavailable = time.monotonic() - started
            with pytest.raises(latpred.DeadlineExceeded):
                await a.wait_until_serving(timeout=0.5)
            return unavailable

    # Three attempts, 0.25 s and 0.5 s apart.
    assert 0.7 < asyncio.run(body()) < 5


def test_sync_retries_reads_within_the_timeout() -> None:
    server, port, _, _ = serve()
    server.stop(None)
    with latpred.Client(f"127.0.0.1:{port}", timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(latpred.Unavailable):
            client.server_info()
        # The second wait (0.5 s) would pass the 0.5 s budget: two attempts only.
        assert time.monotonic() - started < 0.6
    with pytest.raises(ValueError, match="attempts"):
        latpred.Client("127.0.0.1:1", attempts=0)


def test_numpy_in_numpy_out(client: latpred.Client) -> None:
    indices = np.arange(0, 15625, 50, dtype=np.int32)  # 313: split in four
    latency = client.predict("pixel2", "nb201", indices)
    assert isinstance(latency, np.ndarray) and latency.dtype == np.float64
    assert latency.tolist() == client.predict("pixel2", "nb201", indices.tolist())
    # A list stays a list; rows of op ids are architectures too.
    assert isinstance(client.predict("pixel2", "nb201", [0, 1]), list)
    ops = np.array([[3, 0, 1, 1, 0, 3], [0, 0, 0, 0, 0, 0]])
    assert client.predict("pixel2", "nb201", ops).shape == (2,)
    empty = client.predict("pixel2", "nb201", np.array([], dtype=np.int64))
    assert isinstance(empty, np.ndarray) and empty.shape == (0,)
    assert client.predict_interval("pixel2", "nb201", np.array([], dtype=int)).shape == (0, 3)
    with pytest.raises(latpred.InvalidArgument, match=r"archs\[2\]: NAS-Bench-201 index 15625"):
        client.predict("pixel2", "nb201", np.array([0, 1, 15625, -1]))
    with pytest.raises(latpred.InvalidArgument, match="only in nb201"):
        client.predict("pixel2", "fbnet", np.array([0, 1]))
