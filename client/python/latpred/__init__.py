"""latpred: Python client of the latpred latency-prediction service (latpred.v1).

    import latpred
    with latpred.Client("127.0.0.1:50051") as client:
        client.wait_until_serving(timeout=300)
        ms = client.predict("pixel2", "nb201", [0, 1, 2])   # NAS-Bench-201 indices

``latpred.aio.Client`` is the asyncio client; ``python -m latpred`` the command line.
The package holds the modules of client/python/latpred plus the gRPC stubs generated
from proto/ (``latpred._proto``) and the NAS-Bench-201 index table
(``latpred._nb201_table``), which the CMake target ``latpred_python`` generates: install
its wheel (target ``latpred_python_wheel``), or put ``build/client/python`` on
PYTHONPATH. See client/python/README.md.
"""
from __future__ import annotations

try:
    from . import _proto  # noqa: F401  (generated at build time)
except ImportError as e:  # pragma: no cover - only outside a build tree
    raise ImportError(
        "latpred: the generated gRPC stubs (latpred._proto) are missing. Install the wheel "
        "the CMake target latpred_python_wheel builds, or put BUILD_DIR/client/python on "
        "PYTHONPATH (not client/python of the source tree).") from e

from .archs import (FBNET_OPS, NB201_OPS, Nb201Table, fbnet_string, nb201_ops, nb201_string,
                    normalize_arch, normalize_archs)
from .client import Client, FeaturesLike, SampleLike, new_request_id, token_from_environment
from .datatypes import (AdaptResult, ArchLike, Device, Feature, FeatureSource, FitStats,
                        ModelState, Prediction, RegisterResult, Sample, SampleResult,
                        ServerInfo, SpaceState, SubmitResult)
from .errors import (DeadlineExceeded, FailedPrecondition, InvalidArgument, LatpredError,
                     NoInterval, NotFound, ResourceExhausted, Unauthenticated, Unavailable,
                     error_from_rpc)

from ._version import __version__  # generated: the CMake project version
from . import aio  # noqa: E402  (latpred.aio.Client, on grpc.aio)

__all__ = [
    "Client", "aio", "new_request_id", "token_from_environment", "__version__",
    # results
    "AdaptResult", "Device", "Feature", "FeatureSource", "FitStats", "ModelState",
    "Prediction", "RegisterResult", "Sample", "SampleResult", "ServerInfo", "SpaceState",
    "SubmitResult",
    # input types
    "ArchLike", "FeaturesLike", "SampleLike",
    # architectures
    "FBNET_OPS", "NB201_OPS", "Nb201Table", "fbnet_string", "nb201_ops", "nb201_string",
    "normalize_arch", "normalize_archs",
    # errors
    "LatpredError", "InvalidArgument", "NotFound", "FailedPrecondition", "NoInterval",
    "ResourceExhausted", "Unavailable", "Unauthenticated", "DeadlineExceeded", "error_from_rpc",
]
