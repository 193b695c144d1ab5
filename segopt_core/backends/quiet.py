"""Known, harmless deprecation warnings of the libraries segopt drives, kept off the user's console."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_library_warnings() -> Iterator[None]:
    """Silence known deprecation warnings while the block runs: torch's export, quantization (quantized
    tensor creation) and inductor (`torch.tensor(tensor)` copies), and transformers' attributes that
    tracing reads (`is_gradient_checkpointing`); library log lines go through segopt's logger."""
    import warnings

    from segopt_core.logs import route_library_logging

    route_library_logging()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.tensor\(.*sourceTensor.*")
        warnings.filterwarnings("ignore", message=r".*quantized tensor.*", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\._inductor.*")
        warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
        yield
