"""Library logging through segopt's logger: warnings and errors only, known-harmless lines dropped, unless
`segopt --debug` (then everything, progress bars included).

NNCF logs INFO lines to stdout through its own handler and draws Rich progress bars (in a log file, each
becomes a line); transformers warns "`loss_type=None` was set in the config but it is unrecognized" when
tracing reads a SegFormer's loss property (segopt never trains through it). `route_library_logging`
removes the libraries' own handlers and forwards their records to the `segopt.<library>` logger, so they
look and filter like segopt's own. It is idempotent and cheap; call it again after importing a library
that configures its logger on import (NNCF does).
"""

from __future__ import annotations

import logging
import re
import sys

# torch is not among them: TORCH_LOGS configures its loggers itself.
LIBRARY_LOGGERS = ("nncf", "transformers", "openvino", "onnxscript")
# Known-harmless library lines, dropped unless debugging (each with why it is harmless).
HARMLESS = (
    # SegFormer has no `loss_type`; the property is read by tracing, segopt's training computes its own loss
    re.compile(r"`loss_type=\w+` was set in the config but it is unrecognized"),
)
# Loggers that speak while being imported, before any segopt code can route them: torchao (the optional PT2E
# INT8 extra) says its CUDA-only kernels do not load on CPU machines and registers enums torch warns about;
# transformers imports it whenever it is installed, so every command would start with four such warnings.
NOISY_AT_IMPORT = ("torchao", "torch.utils._pytree")
_debug = False


class _Harmless(logging.Filter):
    """Drops the records of `HARMLESS`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(pattern.search(record.getMessage()) for pattern in HARMLESS)


class _ToSegopt(logging.Handler):
    """Hands a library's record to the `segopt.<library>` logger (its handlers, then its parents')."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(f"segopt.{record.name}").handle(record)


def route_library_logging(debug: bool | None = None) -> None:
    """Forward the libraries' logging to segopt's logger at WARNING (DEBUG with `debug`); None keeps the
    mode an earlier call set (the CLI sets it from `--debug`)."""
    global _debug
    _debug = _debug if debug is None else debug
    if "transformers" in sys.modules:  # its own stderr handler is added on first use unless configured now
        from transformers.utils import logging as hf_logging

        hf_logging.disable_default_handler()
    for name in LIBRARY_LOGGERS:
        _route(logging.getLogger(name))
    if "nncf" in sys.modules:
        _quiet_nncf_progress()


def quiet_import_noise() -> None:
    """Errors only from the loggers of `NOISY_AT_IMPORT` (called when segopt_core is imported)."""
    for name in NOISY_AT_IMPORT:
        logging.getLogger(name).setLevel(logging.ERROR)


def _route(logger: logging.Logger) -> None:
    """One library logger: its own handlers replaced by the forwarder, level and filter set."""
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    forward = _ToSegopt()
    if not _debug:
        forward.addFilter(_Harmless())  # on the handler: a logger's filters skip its children's records
    logger.addHandler(forward)
    logger.propagate = False
    logger.setLevel(logging.INFO if _debug else logging.WARNING)


def _quiet_nncf_progress() -> None:
    """NNCF's Rich progress bars only when debugging (NNCF offers no switch: its `track` is wrapped)."""
    from nncf.common.logging import track_progress

    init = track_progress.track.__init__
    if getattr(init, "segopt_routed", False):
        return

    def quiet_init(self, *args, **kwargs) -> None:
        kwargs["disable"] = kwargs.get("disable", False) or not _debug
        init(self, *args, **kwargs)

    quiet_init.segopt_routed = True
    track_progress.track.__init__ = quiet_init
