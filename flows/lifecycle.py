"""Ad hoc flow runs (`segopt optimize-all`, `nightly-benchmark`): no child outlives the run, signals stop it.

Prefect's ephemeral mode starts a temporary API server (`SubprocessASGIServer`, uvicorn on 127.0.0.1) and
stops it only from `atexit`, which neither SIGKILL nor the default SIGTERM action runs. Here the server's
command is tied to this process (`segopt_core.lifecycle.tied_command`: the kernel sends it SIGTERM when
this process dies, however it dies), and SIGTERM/SIGINT stop the run within seconds after releasing the
device slots this process holds.
"""

from __future__ import annotations

import signal
import subprocess
import types

from segopt_core import lifecycle


def _tied_popen(*args, **kwargs) -> subprocess.Popen:
    command = kwargs.pop("args", None) if not args else args[0]
    return subprocess.Popen(lifecycle.tied_command(command), *args[1:], **kwargs)


def tie_ephemeral_server() -> None:
    """Make Prefect's temporary API server die with this process (it is started from the main thread), and
    start one at a time per Prefect home: two servers starting at once on a fresh database both run its
    migrations, and the loser prints a traceback ("index ... already exists") before Prefect retries."""
    from prefect.server.api import server
    from prefect.settings import get_current_settings

    if getattr(server.subprocess, "Popen", None) is not _tied_popen:
        server.subprocess = types.SimpleNamespace(Popen=_tied_popen, TimeoutExpired=subprocess.TimeoutExpired)
    start = server.SubprocessASGIServer.start
    if getattr(start, "segopt_serialized", False):
        return

    def serialized_start(self, *args, **kwargs):
        if self.running:
            return start(self, *args, **kwargs)
        with lifecycle.file_lock(get_current_settings().home / "segopt-server-start.lock"):
            return start(self, *args, **kwargs)

    serialized_start.segopt_serialized = True
    server.SubprocessASGIServer.start = serialized_start


def prepare_ad_hoc_run(flow_name: str, debug: bool = False) -> None:
    """Tie the temporary server to this process; on SIGTERM/SIGINT release the device slot and stop."""
    from prefect.settings import get_current_settings

    from tasks.benchmark import release_held_slots

    if not get_current_settings().api.url:  # ephemeral mode: this run starts its own server
        tie_ephemeral_server()
    lifecycle.on_stop(release_held_slots)
    lifecycle.install_stop_handlers(flow_name)
    keep_stop_handler_in_flows()
    if not debug:
        quiet_expected_tracebacks()


def quiet_expected_tracebacks() -> None:
    """A full disk and segopt's own domain errors (a variant that failed verification, no variant that
    succeeded) are not bugs: the console shows their one-line message without the traceback (the Prefect
    API logs, written first, keep it; `segopt --debug` keeps it on the console too)."""
    import copy

    from prefect.logging.handlers import PrefectConsoleHandler

    from segopt_core.atomic import is_disk_full
    from segopt_core.errors import SegoptError

    emit = PrefectConsoleHandler.emit
    if getattr(emit, "segopt_quiet", False):
        return

    def quiet_emit(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and (isinstance(exc, SegoptError) or is_disk_full(exc)):
            record = copy.copy(record)
            record.exc_info, record.exc_text = None, None
        return emit(self, record)

    quiet_emit.segopt_quiet = True
    PrefectConsoleHandler.emit = quiet_emit


def keep_stop_handler_in_flows() -> None:
    """Keep our SIGTERM handler while a flow runs.

    Prefect's flow engine swaps SIGTERM for a handler that raises `TerminationSignal` and reports the crash
    to the API first: when the signal went to the whole process group the temporary server is already
    gone, and the run kept retrying for minutes with a traceback per task. The engine installs whatever
    its module's `_prefect_sigterm_handler` is, so pointing that at ours keeps the engine's bookkeeping.
    """
    from prefect.utilities import engine

    if hasattr(engine, "_prefect_sigterm_handler"):
        engine._prefect_sigterm_handler = signal.getsignal(signal.SIGTERM)
