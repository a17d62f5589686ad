"""Model selection on unseen dates (issue "Learning that pays", item 2): with 3 pairs or more the learned methods
hold interior pair dates out in time (their fine images are training targets nowhere); with 2 pairs a spatial block
validates and an epoch beyond 0 is kept only when it beats the start by more than the score's noise."""
import datetime as dt

import numpy as np
import pytest

from stf_fusion.core.deep.training import History, train
from stf_fusion.core.deep.validation import Score, plan_validation, significant, temporal_split, validation_record

DAYS = [dt.date(2021, 1, 1) + dt.timedelta(days=16 * i) for i in range(9)]


def test_temporal_split_holds_every_other_interior_pair_out():
    assert temporal_split(DAYS[:2]) == (DAYS[:2], [])
    assert temporal_split(DAYS[:3]) == ([DAYS[0], DAYS[2]], [DAYS[1]])
    assert temporal_split(DAYS[:4]) == ([DAYS[0], DAYS[2], DAYS[3]], [DAYS[1]])
    assert temporal_split(DAYS[:5]) == ([DAYS[0], DAYS[2], DAYS[4]], [DAYS[1], DAYS[3]])
    train_, held = temporal_split(DAYS)  # 9 pairs: at most 3 held, spread, each between training pairs
    assert held == [DAYS[1], DAYS[5], DAYS[7]] and set(train_) | set(held) == set(DAYS)
    for d in held:
        assert any(t < d for t in train_) and any(t > d for t in train_)


def test_plan_validation_designs():
    pairs, holdout = plan_validation(DAYS[:3], None, 100, 120, 0.25)
    assert pairs == [DAYS[0], DAYS[2]] and not holdout.spatial
    assert holdout.targets == ((DAYS[1], (DAYS[0], DAYS[2])),)
    assert (holdout.block.width, holdout.block.height) == (120, 100)  # the whole scene
    assert validation_record(holdout, [0.02, 0.01], 1, {})["protocol"] == "temporal"
    pairs, holdout = plan_validation(DAYS[:2], None, 100, 120, 0.25)
    assert pairs == DAYS[:2] and holdout.spatial
    assert validation_record(holdout, [0.02, 0.01], 1, {})["protocol"] == "spatial"
    pairs, holdout = plan_validation(DAYS[:4], [DAYS[0], DAYS[3]], 100, 120, 0.25)  # the user's training pairs
    assert pairs == [DAYS[0], DAYS[3]] and [t for t, _ in holdout.targets] == [DAYS[1], DAYS[2]]
    assert validation_record(None, [], 0, {})["protocol"] == "none"


def test_significant_compares_the_improvement_with_its_noise():
    start = Score(0.020, (0.020, 0.021, 0.019, 0.020))
    clear = Score(0.018, (0.018, 0.019, 0.017, 0.018))  # 2e-3 better on every part
    noisy = Score(0.0195, (0.014, 0.026, 0.016, 0.022))  # better on average, but parts disagree
    assert significant(clear, start)
    assert not significant(noisy, start)
    assert not significant(start, start)
    assert significant(0.01, 0.02) and not significant(0.03, 0.02)  # plain numbers: any improvement


@pytest.mark.parametrize("guard, kept", [(True, 0), (False, 1)])
def test_the_noise_guard_keeps_the_start_when_the_gain_is_noise(guard, kept):
    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(1, 1)
    scores = iter([Score(0.020, (0.020, 0.021, 0.019, 0.020)), Score(0.0195, (0.014, 0.026, 0.016, 0.022))])

    class Batches:
        samples = 1

        def __len__(self):
            return 1

        def __call__(self, epoch):
            yield torch.ones(1, 1), torch.ones(1, 1)

    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    history: History = train(net, opt, Batches(), 1, torch.nn.functional.mse_loss, lambda: next(scores),
                             noise_guard=guard)
    assert history.best_epoch == kept
    assert np.allclose(history.validation, [0.020, 0.0195])


def test_a_model_that_kept_its_start_is_not_said_to_miss_its_start():
    from stf_fusion.core.deep.validation import model_warnings

    record = {"rmse": 0.02, "untrained_rmse": 0.02, "additive_rmse": 0.02, "naive_rmse": 0.03, "best_epoch": 0,
              "beats": {"untrained": False, "naive": True, "additive": False}}
    [warning] = model_warnings({"validation": record})
    assert "the additive baseline 0.02000" in warning and "its untrained start" not in warning
    assert "kept the untrained start" in warning
    record["beats"]["additive"] = True
    assert model_warnings({"validation": record}) == []


def test_bf16_training_keeps_float32_weights_and_learns_as_float32(monkeypatch):
    """Training under bf16 autocast (issue 28: STFDCNN's and STF3DCNN's training 2x faster): the weights stay
    float32, STF_TRAIN_PRECISION=fp32 gives exactly the float32 run, and where the CPU has native bf16 the trained
    residual network's loss is within 2 % of the float32 run's (bf16 rounds only the learned correction)."""
    torch = pytest.importorskip("torch")
    from stf_fusion.core.deep.stfdcnn import StfdcnnParams, build_network
    from stf_fusion.core.deep.training import TensorBatches, bf16_training

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 17, 17, generator=gen)
    y = x + 0.05 * torch.nn.functional.avg_pool2d(x, 3, 1, 1)  # a learnable residual

    def run(bf16: bool):
        torch.manual_seed(0)
        net = build_network(StfdcnnParams(n1=16, n2=8))
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        train(net, opt, TensorBatches(x, y, 16, 0), 8, torch.nn.functional.mse_loss, bf16=bf16)
        with torch.no_grad():
            return net, float(torch.nn.functional.mse_loss(net(x), y))

    net32, loss32 = run(False)
    monkeypatch.setenv("STF_TRAIN_PRECISION", "fp32")
    assert not bf16_training("cpu")
    net_off, loss_off = run(True)
    assert loss_off == loss32
    monkeypatch.delenv("STF_TRAIN_PRECISION")
    net16, loss16 = run(True)
    assert all(p.dtype == torch.float32 for p in net16.parameters())
    start = float(torch.nn.functional.mse_loss(x, y))
    assert loss32 < 0.5 * start  # it learned
    if bf16_training("cpu"):
        assert loss16 != loss32 and abs(loss16 - loss32) <= 0.02 * loss32
    else:
        assert loss16 == loss32


def test_our_adam_gives_torchs_adam_weights_exactly():
    """training.Adam (issue 28: torch's optimisers import the compiler, 1.2 s of STFDCNN's training) follows
    torch.optim.Adam operation for operation: two parameter groups with their own rates, a parameter without a
    gradient, ten steps in channels-last layout, the same weights bit for bit."""
    import torch

    from stf_fusion.core.deep.training import Adam

    def run(make):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 1),
                                  torch.nn.Conv2d(1, 1, 1)).to(memory_format=torch.channels_last)
        frozen = net[3].weight
        opt = make([{"params": list(net[0].parameters()) + [net[2].weight], "lr": 1e-2},
                    {"params": [net[2].bias, frozen], "lr": 1e-3}])
        gen = torch.Generator().manual_seed(1)
        for _ in range(10):
            opt.zero_grad(set_to_none=True)
            x = torch.rand(3, 2, 9, 9, generator=gen)
            loss = (net[2](net[1](net[0](x))) - 0.5).pow(2).mean()  # net[3] unused: no gradient
            loss.backward()
            opt.step()
        return [p.detach().clone() for p in net.parameters()]

    ours = run(lambda groups: Adam(groups))
    theirs = run(lambda groups: torch.optim.Adam(groups))
    assert len(ours) == len(theirs) == 6
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    assert not torch.equal(ours[0], run(lambda groups: Adam(groups, betas=(0.8, 0.999)))[0])  # the rule matters
