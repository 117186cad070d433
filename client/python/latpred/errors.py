"""Errors raised by the latpred client.

Every failed call raises a :class:`LatpredError` carrying ``.code`` (a
:class:`grpc.StatusCode`) and ``.message`` (the server's message, verbatim, except
that an item index in a batch the client split is made relative to the whole list).
The subclasses follow the error semantics of ``latpred.v1`` (see the proto):

================== ================================ ==============================
exception          status code                      when
================== ================================ ==============================
InvalidArgument    INVALID_ARGUMENT                 malformed input; the message
                                                    names the item and the reason
NotFound           NOT_FOUND                        unknown device
FailedPrecondition FAILED_PRECONDITION              nothing to predict with yet,
                                                    read-only source device
NoInterval         FAILED_PRECONDITION              predict_interval on a model
                                                    without one (raised by the
                                                    client)
ResourceExhausted  RESOURCE_EXHAUSTED               over a configured server limit
Unavailable        UNAVAILABLE                      server starting, shutting down
                                                    or unreachable
Unauthenticated    UNAUTHENTICATED                  missing or rejected token
DeadlineExceeded   DEADLINE_EXCEEDED                the call (or a wait) timed out
LatpredError       any other code                   e.g. INTERNAL
================== ================================ ==============================

Input the client rejects before sending (an NAS-Bench-201 index the bundled table
does not know, a FBNet op index outside 0..8) raises InvalidArgument as well, with
the client's own message. InvalidArgument is also a ValueError, NotFound a
LookupError and DeadlineExceeded a TimeoutError, so generic handlers work too.
"""
from __future__ import annotations

from typing import Dict, Optional, Type

import grpc

__all__ = [
    "LatpredError",
    "InvalidArgument",
    "NotFound",
    "FailedPrecondition",
    "NoInterval",
    "ResourceExhausted",
    "Unavailable",
    "Unauthenticated",
    "DeadlineExceeded",
    "error_from_rpc",
]


class LatpredError(Exception):
    """A failed latpred call: ``code`` is the gRPC status code, ``message`` its text."""

    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None) -> None:
        super().__init__(message)
        self.message: str = message
        self.code: grpc.StatusCode = code if code is not None else self.default_code

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code.name})"


class InvalidArgument(LatpredError, ValueError):
    """Malformed input (an architecture, a sample, a name); nothing was changed."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(LatpredError, LookupError):
    """The device is unknown to the server."""

    default_code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(LatpredError):
    """The call cannot be served in the current state (e.g. no model for the device yet)."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class NoInterval(FailedPrecondition):
    """``Client.predict_interval`` on a device whose model has no interval: zero-shot, a
    source device, or fewer than 3 samples (the server answered the latencies alone)."""


class ResourceExhausted(LatpredError):
    """A server limit was exceeded (e.g. a batch over ``--max-batch``)."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(LatpredError):
    """The server is unreachable, still preparing its models, or shutting down."""

    default_code = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(LatpredError):
    """The server requires a (different) token."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class DeadlineExceeded(LatpredError, TimeoutError):
    """The call did not finish within its timeout, or the server did not become ready."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


_BY_CODE: Dict[grpc.StatusCode, Type[LatpredError]] = {
    cls.default_code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        FailedPrecondition,
        ResourceExhausted,
        Unavailable,
        Unauthenticated,
        DeadlineExceeded,
    )
}


def error_from_rpc(error: grpc.RpcError, message: Optional[str] = None) -> LatpredError:
    """The LatpredError for a failed gRPC call (``message`` replaces the server's text)."""
    code = error.code() if hasattr(error, "code") else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    if message is None:
        details = error.details() if hasattr(error, "details") else None
        message = details if details else code.name
    return _BY_CODE.get(code, LatpredError)(message, code)
