"""Drop-rate warm-up: hand-computed values, the rate the layer actually uses, and the state round
trip through state_dict / torch.save (checkpoint and resume) and DistributedDataParallel."""

import io
import math
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
sdt = pytest.importorskip("structdrop.torch")


def test_warmup_factor_values():
    assert sdt.warmup_factor(0, 10) == 0.0
    assert sdt.warmup_factor(3, 10) == pytest.approx(0.3)
    assert sdt.warmup_factor(10, 10) == 1.0 and sdt.warmup_factor(25, 10) == 1.0
    assert sdt.warmup_factor(5, 10, "cosine") == pytest.approx(0.5)
    assert sdt.warmup_factor(2, 8, "cosine") == pytest.approx((1 - math.cos(math.pi / 4)) / 2)
    assert sdt.warmup_factor(0, 0) == 1.0  # no warm-up
    with pytest.raises(ValueError, match="warmup"):
        sdt.warmup_factor(1, 2, "step")


def test_layer_uses_the_scheduled_rate():
    torch.manual_seed(30)
    layer = sdt.DropBlock2d(3, p=0.4, warmup_steps=4, warmup="linear")
    x = torch.ones(2000, 1, 6, 6)
    assert layer.p == 0.0 and layer(x) is x  # identity before the warm-up starts
    assert layer.step() == pytest.approx(0.1)
    layer.step(1)
    assert layer.p == pytest.approx(0.2)
    dropped = (
        (layer(x)[:, 0, 2, 3] == 0).double().mean().item()
    )  # one unit over 2000 independent maps
    assert abs(dropped - 0.2) <= 5 * math.sqrt(0.2 * 0.8 / 2000)
    m = layer.mask_moments(6, 6).keep_probability
    assert torch.allclose(m, torch.full_like(m, 0.8))
    layer.step(10)
    assert layer.p == pytest.approx(0.4)
    layer.p = 0.25  # a new target rate (torchvision-style attribute)
    assert layer.p == 0.25 and layer.target_p == 0.25
    with pytest.raises(ValueError, match="p must lie"):
        layer.p = 1.0
    with pytest.raises(ValueError, match="steps"):
        layer.step(-1)


def _model():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1),
        sdt.DropBlock2d(3, p=0.3, warmup_steps=100, warmup="cosine"),
        torch.nn.Flatten(),
        torch.nn.Linear(3 * 25, 4),
    )
    sdt.weight_dropout(net[3], p=0.5, warmup_steps=50)
    return net


def test_state_dict_round_trip_resumes_the_schedule():
    model = _model()
    scheduler = sdt.DropRateScheduler(model)
    for _ in range(37):
        rates = scheduler.step()
    assert set(rates) == {"1", "3.parametrizations.weight.0"}
    assert rates["1"] == pytest.approx(0.3 * (1 - math.cos(math.pi * 0.37)) / 2)
    assert rates["3.parametrizations.weight.0"] == pytest.approx(0.5 * 37 / 50)
    state = model.state_dict()
    assert (
        int(state["1.schedule_step"]) == 37
        and int(state["3.parametrizations.weight.0.schedule_step"]) == 37
    )
    buffer = io.BytesIO()
    torch.save({"model": state}, buffer)
    buffer.seek(0)
    resumed = _model()
    assert resumed[1].p == 0.0
    resumed.load_state_dict(torch.load(buffer)["model"])
    assert resumed[1].p == pytest.approx(model[1].p)
    assert resumed[3].parametrizations.weight[0].p == pytest.approx(
        model[3].parametrizations.weight[0].p
    )
    # both continue identically
    a, b = sdt.DropRateScheduler(model).step(20), sdt.DropRateScheduler(resumed).step(20)
    assert a == pytest.approx(b)
    assert resumed[1].p == pytest.approx(0.3 * (1 - math.cos(math.pi * 0.57)) / 2)
    # the learned weights came back too, and a deep copy keeps the step
    assert torch.equal(resumed[0].weight, model[0].weight)
    import copy

    assert copy.deepcopy(model)[1].p == model[1].p


def test_scheduler_rejects_non_modules():
    with pytest.raises(TypeError, match="Module"):
        sdt.DropRateScheduler("model")


_DDP_SCRIPT = """
import math, sys
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
import structdrop.torch as sdt

store = dist.FileStore(sys.argv[1], 1)
dist.init_process_group("gloo", store=store, rank=0, world_size=1)
torch.manual_seed(0)
model = torch.nn.Sequential(  # the same model as _model() below
    torch.nn.Conv2d(2, 3, 3, padding=1),
    sdt.DropBlock2d(3, p=0.3, warmup_steps=100, warmup="cosine"),
    torch.nn.Flatten(),
    torch.nn.Linear(3 * 25, 4),
)
sdt.weight_dropout(model[3], p=0.5, warmup_steps=50)
ddp = DistributedDataParallel(model)
sdt.DropRateScheduler(ddp).step(10)
out = ddp(torch.randn(4, 2, 5, 5))
out.square().sum().backward()
state = ddp.state_dict()
assert int(state["module.1.schedule_step"]) == 10, state["module.1.schedule_step"]
assert math.isclose(model[1].p, 0.3 * (1 - math.cos(math.pi * 0.1)) / 2), model[1].p
# DDP's reducer holds the group: release it while the group is alive, then the group.
del ddp, out
dist.destroy_process_group()
print("ok")
"""


@pytest.mark.slow
def test_ddp_buffers(tmp_path):
    """A one-process gloo group: the step buffer is a DDP buffer, saved with the module prefix.

    It runs in a fresh interpreter with a time limit: gloo's worker threads belong to the process,
    and a group torn down inside the test process once left pytest waiting on a thread join in the
    group's destructor after the test had passed."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    done = subprocess.run(
        [sys.executable, "-c", _DDP_SCRIPT, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_buffers_follow_the_module():
    model = _model().cuda()
    sdt.DropRateScheduler(model).step(30)
    assert model[1].schedule_step.device.type == "cuda" and int(model[1].schedule_step) == 30
    out = model(torch.randn(2, 2, 5, 5, device="cuda"))
    assert out.device.type == "cuda"
    resumed = _model()
    resumed.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    assert resumed[1].p == pytest.approx(model[1].p)
