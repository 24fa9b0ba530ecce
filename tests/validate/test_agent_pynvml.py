"""The agent's fabric-state calls through the real nvidia-ml-py binding: only libnvidia-ml itself (which
needs a GPU) is stood in for, by ctypes functions at the library boundary, so the calling convention
(the versioned struct, passed by reference) and the binding's own "Function Not Found" for a driver
without a call are the real ones, not the fake module's idea of them."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from clusterctl.validate import agent


@pytest.fixture
def pynvml() -> ModuleType:
    try:
        import pynvml
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("nvidia-ml-py is not installed, and CI must run this test (pip install -e .[test])")
        pytest.skip("nvidia-ml-py is not installed")
    return pynvml


DEVICE = ctypes.c_void_p(0x1000)


KEEP: list[Any] = []  # the callbacks behind the function pointers must outlive every call


def fabric_function(pynvml: ModuleType, struct: type, fill: Callable[[Any], int]) -> Any:
    """A C function of libnvidia-ml: (nvmlDevice_t, struct *) -> nvmlReturn_t, called as the binding calls
    a CDLL function: without argtypes, so a struct passed by value instead of by reference arrives wrong."""
    callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(struct))(
        lambda device, info: fill(info.contents))
    KEEP.append(callback)
    function = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.cast(callback, ctypes.c_void_p).value)
    function.argtypes = None
    return function


@pytest.fixture
def library(pynvml: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    def install(**functions: Any) -> None:
        monkeypatch.setattr(pynvml, "nvmlLib", SimpleNamespace(**functions))
        monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})

    yield install


def completed_v2(pynvml: ModuleType) -> Callable[[Any], int]:
    def fill(info: Any) -> int:
        if info.version != pynvml.nvmlGpuFabricInfo_v2:  # what the real library checks first
            return pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH
        info.state, info.status, info.cliqueId = pynvml.NVML_GPU_FABRIC_STATE_COMPLETED, pynvml.NVML_SUCCESS, 7
        return pynvml.NVML_SUCCESS

    return fill


def test_a_current_driver_answers_through_the_versioned_call(pynvml: ModuleType, library: Any) -> None:
    library(nvmlDeviceGetGpuFabricInfoV=fabric_function(pynvml, pynvml.c_nvmlGpuFabricInfoV_t, completed_v2(pynvml)))
    assert agent.collect_fabric(pynvml, DEVICE) == {"state": "completed", "status": 0, "status_text": "Success",
                                                    "clique_id": 7}


def test_a_driver_with_only_the_older_call_still_reports_the_state(pynvml: ModuleType, library: Any) -> None:
    def fill(info: Any) -> int:
        info.state, info.status = pynvml.NVML_GPU_FABRIC_STATE_IN_PROGRESS, pynvml.NVML_SUCCESS
        return pynvml.NVML_SUCCESS

    library(nvmlDeviceGetGpuFabricInfo=fabric_function(pynvml, pynvml.c_nvmlGpuFabricInfo_t, fill))
    assert agent.collect_fabric(pynvml, DEVICE)["state"] == "in_progress"


def test_older_drivers_and_gpus_without_a_fabric_say_so(pynvml: ModuleType, library: Any) -> None:
    library()  # a driver older than both calls: the binding raises Function Not Found
    assert agent.collect_fabric(pynvml, DEVICE) == {"unsupported": "not supported by this driver"}
    refuse = fabric_function(pynvml, pynvml.c_nvmlGpuFabricInfoV_t, lambda info: pynvml.NVML_ERROR_NOT_SUPPORTED)
    library(nvmlDeviceGetGpuFabricInfoV=refuse)
    assert agent.collect_fabric(pynvml, DEVICE) == {"unsupported": "not supported by this GPU"}
