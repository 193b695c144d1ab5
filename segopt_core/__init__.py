"""segopt core library: SegFormer loading, optimization, evaluation and benchmarking (no orchestration)."""

from segopt_core.logs import quiet_import_noise

__version__ = "0.1.0"

quiet_import_noise()  # before transformers (imported by almost every segopt module) pulls torchao in
