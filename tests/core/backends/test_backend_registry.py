"""Every registered backend keeps the one backend contract; the table is the one place declaring it."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import pytest

from segopt_core.backends import BackendUnavailable, VariantOptions
from segopt_core.backends.options import PRECISIONS
from segopt_core.backends.registry import BACKENDS, Backend, check_module, get_backend

REGISTERED = sorted(BACKENDS)


def _test_module(name: str) -> types.ModuleType:
    """A sibling test module (importlib mode puts no test folder on sys.path)."""
    spec = importlib.util.spec_from_file_location(f"_segopt_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", REGISTERED)
def test_every_registered_backend_module_keeps_the_contract(name):
    backend = get_backend(name)
    module = backend.module()
    assert module.__name__ == backend.module_name
    assert set(backend.precisions) <= set(PRECISIONS) and set(backend.devices) <= {"cpu", "cuda"}


@pytest.mark.parametrize("name", REGISTERED)
def test_options_follow_the_declaration(name):
    backend = get_backend(name)
    for precision in PRECISIONS:
        if precision in backend.precisions:
            assert VariantOptions(name, precision).backend == name
        else:
            with pytest.raises(ValueError, match=f"does not implement precision '{precision}'"):
                VariantOptions(name, precision)
    if backend.cuda_only:
        options = VariantOptions(name, backend.precisions[0])
        assert options.device == "cuda" and not options.slug.endswith("-cuda")
    elif "cuda" not in backend.devices:
        with pytest.raises(ValueError, match="runs on cpu only"):
            VariantOptions(name, "fp32", device="cuda")


@pytest.mark.parametrize("name", REGISTERED)
def test_availability_is_an_answer_not_a_crash(name):
    """On any machine each backend's fp32 variant is either available or says why (the skip reason)."""
    backend = get_backend(name)
    reason = backend.available(VariantOptions(name, "fp32", device=backend.devices[0]))
    assert reason is None or (isinstance(reason, str) and reason)


def test_every_registered_backend_goes_through_the_shared_backend_checks():
    """Adding a backend to the table without a BaseBackendTester subclass (or a GPU case) fails here."""
    variants = _test_module("test_backend_variants")
    tested = {
        cls.options.backend
        for module in (variants, _test_module("test_backend_openvino"))
        for cls in vars(module).values()
        if isinstance(cls, type)
        and hasattr(cls, "options")
        and any(base.__name__ == "BaseBackendTester" for base in cls.__mro__[1:])
    }
    tested |= {o.backend for o in variants.GPU_OPTIONS}
    assert tested == set(BACKENDS)


def test_a_module_that_breaks_the_contract_is_refused_by_name():
    module = types.ModuleType("fake_backend")
    module.check_available = lambda options: None
    module.build = lambda model, spec, folder: {}  # `options` missing
    with pytest.raises(
        TypeError, match=r"backend 'fake'.*build\(model, spec, folder\) should take .*; no load\(\)"
    ):
        check_module(module, "fake")


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(KeyError, match="valid: torch, torch-compile, onnxruntime, tensorrt, openvino"):
        get_backend("tflite")
    with pytest.raises(ValueError, match="at least one precision"):
        Backend("empty", (), ("cpu",), "x")


def test_an_unavailable_backend_gives_its_reason():
    tensorrt = get_backend("tensorrt")
    try:
        tensorrt.module().check_available(VariantOptions("tensorrt", "fp16"))
    except BackendUnavailable as exc:
        assert tensorrt.available(VariantOptions("tensorrt", "fp16")) == str(exc)
    else:
        assert tensorrt.available(VariantOptions("tensorrt", "fp16")) is None
