"""The dry run's guard (gpu_dryrun.sh puts this folder on PYTHONPATH): no network, no prefect or mlflow.

The GPU machine has no network and no prefect or mlflow, so in the dry run every Python process refuses
connections beyond this host and records, in $GPU_DRYRUN_LOG, each connection, name lookup or import of
prefect/mlflow that something tries (code that catches the failure would otherwise hide it). The dry run
fails when that file is not empty.
"""

from __future__ import annotations

import errno
import os
import socket
import sys

BLOCKED_MODULES = ("prefect", "mlflow")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "")


def _record(what: str) -> None:
    """Append one line naming the process and what it tried."""
    path = os.environ.get("GPU_DRYRUN_LOG")
    if path:
        with open(path, "a") as log:
            log.write(f"pid {os.getpid()} ({' '.join(sys.argv)[:160]}): {what}\n")


def _is_local(address) -> bool:
    return not isinstance(address, tuple) or str(address[0]) in LOCAL_HOSTS


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
        _record(f"network: connect to {address!r}")
        raise OSError(errno.ENETUNREACH, f"gpu dry run: no network (connect to {address!r})")
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
        _record(f"network: connect_ex to {address!r}")
        return errno.ENETUNREACH
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else str(host or "")
    if name not in LOCAL_HOSTS:
        _record(f"network: name lookup of {name!r}")
        raise socket.gaierror(socket.EAI_NONAME, f"gpu dry run: no network (lookup of {name!r})")
    return _getaddrinfo(host, *args, **kwargs)


class _RecordBlockedImports:
    """A meta-path finder that records imports of prefect/mlflow and leaves the failing to the others."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED_MODULES:
            _record(f"import {name}")
        return None


socket.socket.connect, socket.socket.connect_ex = _guarded_connect, _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo
sys.meta_path.insert(0, _RecordBlockedImports())
