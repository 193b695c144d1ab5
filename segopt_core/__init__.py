"""segopt core library: SegFormer loading, optimization, evaluation and benchmarking (no orchestration)."""

__version__ = "0.1.0"
