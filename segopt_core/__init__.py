"""segopt core library: SegFormer loading, optimization, evaluation and benchmarking (no orchestration)."""

import logging

__version__ = "0.1.0"

# torchao (the optional PT2E INT8 extra) logs at import that its CUDA-only kernels do not load on CPU
# machines, and registers enums that torch now warns about; transformers imports it whenever it is
# installed, so without this every segopt command would start with four harmless warnings.
for _noisy in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)
