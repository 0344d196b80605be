"""A SQLite study served to ``--ray`` actors through Optuna's gRPC storage proxy, with each
running trial's writes carried to the driver together with its next call.

A trial of ten epochs makes about fifty storage calls: ten parameters, four records, then a
history row, a reported value and the pruner's read of the study each epoch. Through Optuna's
proxy each is a round trip to the driver, and each write waits there for SQLite's commit.
:class:`BatchingProxy` is Optuna's ``GrpcStorageProxy`` whose writes of a trial (parameters,
records, reported values) wait in the actor and go to the driver in the same call as the next
read or state change, a rewritten record once. :func:`serve` is Optuna's server with one more
method, ``/tuner.Batch/Apply``: the waiting writes, then the call they came with, each handled
by Optuna's own servicer as if it had been sent alone (:class:`_Applier` says in which order).
A trial then costs about fourteen round trips instead of fifty, and its pruner's reads do not
wait for its own rows to be committed (benchmarks/cluster.py).

What waits is never what another process must see at once: a trial's process record (which
driver ran it, read when the study is opened again) and its checkpoint record are written at
once, nothing waits across the end of a trial (its state change lands after its rows), and
nothing waits much longer than :data:`MAX_WAIT_S` (a write made after that takes the waiting
ones with it: ``tuner trials`` in another terminal sees a slow trial's epochs as they end). A
write the study refuses (the trial was failed meanwhile: its node declared lost) is logged by
the driver. The wire carries Optuna's own request messages (protobuf) in a JSON frame, the
method names checked against Optuna's service: nothing received is run.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import optuna
from optuna.storages import GrpcStorageProxy

from tuner.storage import records

log = logging.getLogger(__name__)

APPLY = "/tuner.Batch/Apply"
# The writes that wait for the next call (Optuna's method names), and the records sent at once.
DEFERRED = frozenset({"SetTrialParameter", "SetTrialUserAttribute", "SetTrialSystemAttribute",
                      "SetTrialIntermediateValue"})
AT_ONCE = frozenset({records.PROCESS, records.CHECKPOINT})
MAX_WAIT_S = 1.0  # a write that has waited this long goes with the next one: rows of slow epochs show


def _methods() -> dict[str, tuple[Any, Any]]:
    """Each method of Optuna's storage service: its request and reply message types."""
    # Private module: the proxy's generated messages. Pinned by tests/test_optuna_private.py.
    from optuna.storages._grpc.auto_generated import api_pb2

    service = api_pb2.DESCRIPTOR.services_by_name["StorageService"]
    return {m.name: (getattr(api_pb2, m.input_type.name), getattr(api_pb2, m.output_type.name))
            for m in service.methods}


def _frame(calls: list[tuple[str, Any]]) -> bytes:
    return json.dumps([[name, base64.b64encode(request.SerializeToString()).decode()]
                       for name, request in calls]).encode()


class _Refused(Exception):
    """A write the study refused, applied after its call had been answered."""


class _Background:
    """The servicer's context for writes applied after their call was answered: a refusal raises."""

    def abort(self, code: Any, details: str = "") -> None:
        raise _Refused(f"{code}: {details}")


class _Applier:
    """The server's side of :data:`APPLY`. Writes go to one thread, in the order they arrived.
    A read of the study's trials (what pruners and samplers ask) is answered without waiting for
    them: they are running trials' rows, which such a read does not need at once. Any other call
    waits for every write that arrived before it, so a trial's state change lands after its last
    row and a trial read back has all it wrote. With too many writes waiting, every call waits.
    """

    MAX_WAITING = 256

    def __init__(self, servicer: Any) -> None:
        self.servicer = servicer
        self.methods = _methods()
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tuner-proxy-writes")
        self.waiting = 0
        self.lock = threading.Lock()

    def _write(self, calls: list[tuple[str, Any]]) -> None:
        try:
            for name, request in calls:
                try:
                    getattr(self.servicer, name)(request, _Background())
                except _Refused as e:  # the trial was finished meanwhile (its node declared lost)
                    log.warning("a running trial's %s was refused by the study: %s", name, e)
        finally:  # a database error reaches the call that waits for these, if one does
            with self.lock:
                self.waiting -= len(calls)

    def __call__(self, frame: bytes, context: Any) -> bytes:
        import grpc

        try:  # every message read before any is applied: a malformed batch changes nothing
            calls = [(name, self.methods[name][0].FromString(base64.b64decode(payload)))
                     for name, payload in json.loads(frame)]
        except Exception:  # whatever arrived, it is not a batch
            calls = []
        if not calls or any(name not in DEFERRED for name, _ in calls[:-1]):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a batch of storage writes and one call")
        *writes, (name, request) = calls
        with self.lock:
            self.waiting += len(writes)
            crowded = self.waiting > self.MAX_WAITING
        written = self.writer.submit(self._write, writes)
        if name != "GetTrials" or crowded:
            written.result()
        return getattr(self.servicer, name)(request, context).SerializeToString()


def serve(storage: Any, host: str, port: int) -> Any:
    """Optuna's gRPC proxy server for ``storage`` on ``host:port`` with :data:`APPLY` added;
    started, to be stopped by the caller."""
    import grpc

    # Private modules: the public run_grpc_proxy_server blocks until killed and hides its
    # servicer. Pinned by tests/test_optuna_private.py.
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    servicer = OptunaStorageProxyService(storage)
    server = grpc.server(ThreadPoolExecutor(max_workers=10))
    api_pb2_grpc.add_StorageServiceServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "tuner.Batch", {"Apply": grpc.unary_unary_rpc_method_handler(_Applier(servicer))}),))
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server


class _Stub:
    """Optuna's stub, with the writes in :data:`DEFERRED` kept until the next call, and every
    call but a plain read of the trials sent as a batch (the server then orders it after the
    writes it is still applying)."""

    def __init__(self, stub: Any, channel: Any) -> None:
        self._stub = stub
        self._apply = channel.unary_unary(APPLY)
        self._methods = _methods()
        self._waiting: list[tuple[str, Any]] = []
        self._since = 0.0  # when the oldest waiting write was made
        self._lock = threading.Lock()
        self.round_trips = 0

    def __getattr__(self, name: str) -> Any:
        if name not in self._methods:
            raise AttributeError(name)
        if name in DEFERRED:
            return lambda request, **kwargs: self._defer(name, request)
        return lambda request, **kwargs: self._call(name, request)

    def _defer(self, name: str, request: Any) -> Any:
        now = time.monotonic()
        with self._lock:
            at_once = (name == "SetTrialUserAttribute" and request.key in AT_ONCE) \
                or (bool(self._waiting) and now - self._since > MAX_WAIT_S)
            if not self._waiting:
                self._since = now
            if name in ("SetTrialUserAttribute", "SetTrialSystemAttribute"):  # a record rewritten: the last wins
                self._waiting = [(n, r) for n, r in self._waiting
                                 if not (n == name and r.trial_id == request.trial_id and r.key == request.key)]
            self._waiting.append((name, request))
        if at_once:
            self._flush()
        return self._methods[name][1]()

    def _take(self) -> list[tuple[str, Any]]:
        with self._lock:
            waiting, self._waiting = self._waiting, []
        return waiting

    def _flush(self) -> None:
        """The waiting writes, the last one as the call they came with (the server waits for it)."""
        if waiting := self._take():
            self._send(waiting)

    def _call(self, name: str, request: Any) -> Any:
        waiting = self._take()
        if not waiting and name == "GetTrials":  # nothing to carry, nothing to wait for
            self.round_trips += 1
            return self._stub.GetTrials(request)
        return self._send([*waiting, (name, request)])

    def _send(self, calls: list[tuple[str, Any]]) -> Any:
        self.round_trips += 1
        return self._methods[calls[-1][0]][1].FromString(self._apply(_frame(calls)))


class BatchingProxy(GrpcStorageProxy):
    """Optuna's ``GrpcStorageProxy`` for a server made by :func:`serve`; see the module's docstring."""

    def __init__(self, *, host: str, port: int) -> None:
        with warnings.catch_warnings():  # "experimental since 4.2": pinned by tests/test_optuna_private.py
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(host=host, port=port)

    def _setup(self) -> None:
        super()._setup()
        # Private attributes: the client's stub, used by its methods and by its trial cache.
        # Pinned by tests/test_optuna_private.py.
        self._stub = _Stub(self._stub, self._channel)
        self._cache.grpc_client = self._stub

    @property
    def round_trips(self) -> int:
        """Calls sent to the server so far (a batch counts once)."""
        return self._stub.round_trips
