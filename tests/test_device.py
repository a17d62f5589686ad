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
