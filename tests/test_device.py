import pytest

from stf_fusion.core.device import describe_device, detected_devices, resolve_device
from stf_fusion.core.errors import InputError

torch = pytest.importorskip("torch")


def test_cpu_and_auto():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert describe_device(resolve_device("cpu")).startswith("CPU (")
    assert detected_devices() in ("CPU only",) or detected_devices().startswith("CUDA: ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(InputError, match="no CUDA GPU is usable"):
        resolve_device("cuda")


def test_unknown_device():
    with pytest.raises(InputError, match="Unknown DEVICE 'tpu'"):
        resolve_device("tpu")


def test_apple_gpus_are_offered_to_the_deep_methods_and_refused_with_reasons(monkeypatch):
    """Issue 26: ``mps`` is a DEVICE choice; where torch has no Apple GPU it is a clear error, and the classic
    methods refuse it (their window sums are float64, which mps lacks)."""
    from stf_fusion.core.device import DEVICES, array_device

    assert "mps" in DEVICES
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(InputError, match="no usable Apple GPU"):
        resolve_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps").type == "mps" and describe_device(resolve_device("mps")) == "Apple GPU (mps)"
    with pytest.raises(InputError, match="float64"):
        array_device("mps")


def test_the_classic_methods_device_without_torch(monkeypatch):
    """Without torch (forced here with STF_ARRAY_BACKEND=numpy) the classic methods run on NumPy: the CPU only."""
    from stf_fusion.core.device import array_device

    monkeypatch.setenv("STF_ARRAY_BACKEND", "numpy")
    for name in ("auto", "cpu"):
        dev = array_device(name)
        assert dev.type == "cpu" and describe_device(dev).startswith("CPU (NumPy, ")
    with pytest.raises(InputError, match="needs PyTorch|a GPU needs PyTorch"):
        array_device("cuda")
    with pytest.raises(InputError, match="Unknown DEVICE 'tpu'"):
        array_device("tpu")
    monkeypatch.delenv("STF_ARRAY_BACKEND")
    assert type(array_device("cpu")) is torch.device
