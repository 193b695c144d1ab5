"""Every row carries the machine fingerprint."""

from __future__ import annotations

from segopt_core.benchmark import COLUMNS, benchmark_predictor, detect_allocator, machine_fingerprint
from segopt_core.cpuinfo import read_cpuinfo as _cpuinfo

MACHINE_COLUMNS = [c.name for c in COLUMNS[COLUMNS.index(next(c for c in COLUMNS if c.name == "hostname")) :]]


def test_fingerprint_fields_present_and_typed():
    fp = machine_fingerprint()
    assert sorted(fp) == sorted(MACHINE_COLUMNS)
    assert fp["cpu_model"] and fp["cpu_logical_cores"] >= 1 and fp["torch_threads"] >= 1
    assert fp["torch_version"] and fp["transformers_version"] and fp["python_version"]
    assert fp["allocator"] in ("glibc", "tcmalloc", "jemalloc", "mimalloc")
    assert fp["segopt_commit"]
    assert all(isinstance(fp[k], bool) for k in fp if k.startswith("isa_"))
    assert fp["date"].endswith("+00:00")


def test_every_row_has_the_fingerprint(sleep_predictor):
    (row,) = benchmark_predictor(sleep_predictor(base_s=0.001), (8, 8), (1,), warmup=0, iters=1)
    fp = machine_fingerprint()
    for key in MACHINE_COLUMNS:
        if key != "date":
            assert row[key] == fp[key], key


def test_allocator_detection(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4.5.9\n")
    assert detect_allocator(maps, env={}) == "tcmalloc"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n")
    assert detect_allocator(maps, env={}) == "glibc"
    assert detect_allocator(maps, env={"LD_PRELOAD": "/opt/libjemalloc.so.2"}) == "jemalloc"


def test_isa_flags_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
        "flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 amx_tile\n\n"
        "processor\t: 1\nmodel name\t: ignored\nflags\t\t: fpu\n"
    )
    model, flags = _cpuinfo(cpuinfo)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"avx2", "avx512_vnni", "amx_tile"} <= flags and "avx_vnni" not in flags
