"""One benchmark per device: concurrency-key names and an exclusive file lock."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from segopt_core.benchmark import DeviceBusy, device_concurrency_key, device_lock


@pytest.mark.parametrize(
    ("device", "key"),
    [
        ("cpu", "segopt-benchmark-cpu"),
        ("cuda", "segopt-benchmark-cuda-0"),
        ("cuda:1", "segopt-benchmark-cuda-1"),
    ],
)
def test_concurrency_keys(device, key):
    assert device_concurrency_key(device) == key


def test_unknown_device_is_rejected():
    with pytest.raises(ValueError, match="mps"):
        device_concurrency_key("mps")


def test_lock_excludes_a_second_holder_in_process(tmp_path):
    with device_lock("cpu", tmp_path):
        with pytest.raises(DeviceBusy, match="another benchmark"):
            with device_lock("cpu", tmp_path, timeout_s=0.2):
                pass
        with device_lock("cuda:0", tmp_path, timeout_s=0.2):  # other devices are independent
            pass
    with device_lock("cpu", tmp_path, timeout_s=0.2):  # released on exit
        pass


def test_lock_excludes_another_process(tmp_path):
    # The holder takes the same file lock device_lock takes, without importing torch (fast start).
    path = tmp_path / f"{device_concurrency_key('cpu')}.lock"
    code = (
        "import os, time\n"
        "from segopt_core.lifecycle import file_lock\n"
        f"with file_lock({str(path)!r}) as fd:\n"
        "    os.write(fd, f'{os.getpid()}\\n'.encode())\n"
        "    print('held', flush=True); time.sleep(30)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        said = []
        with pytest.raises(DeviceBusy, match=str(holder.pid)):
            with device_lock("cpu", tmp_path, timeout_s=0.3, on_wait=said.append):
                pass
        assert len(said) == 1 and f"pid {holder.pid}" in said[0]  # a waiting benchmark says for whom
    finally:
        holder.kill()
        holder.wait()
    start = time.monotonic()
    with device_lock("cpu", tmp_path, timeout_s=5):  # the kernel frees a dead holder's lock
        assert time.monotonic() - start < 5
