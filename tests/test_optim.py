"""The optimizers against torch.optim's: the same update, and state_dicts that move between the two."""
import subprocess
import sys

import pytest
import torch

from uer_like.training.optim import AdamW, build_optimizer, param_groups


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 3))


LRS = (1e-2, 5e-3, 2e-3, 1e-3, 5e-4, 2e-4)


def _train(model, opt, steps, start=0):
    """Steps start .. start + steps - 1 of one fixed run (batches and learning rates)."""
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(16, 6, generator=g) for _ in range(start + steps)][start:]
    for i, x in enumerate(batches):
        for group in opt.param_groups:
            group["lr"] = LRS[start + i]
        model(x).pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def test_adamw_is_torchs_fused_adamw_to_the_bit():
    a, b = _model(), _model()
    ours = AdamW(param_groups(a, 0.1), lr=1e-2, betas=(0.9, 0.98), eps=1e-6)
    ref = torch.optim.AdamW(param_groups(b, 0.1), lr=1e-2, betas=(0.9, 0.98), eps=1e-6, fused=True)
    _train(a, ours, 6)
    _train(b, ref, 6)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    sd_a, sd_b = ours.state_dict(), ref.state_dict()
    assert sd_a["state"].keys() == sd_b["state"].keys()
    for k in sd_a["state"]:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(sd_a["state"][k][name], sd_b["state"][k][name])
    assert [g["params"] for g in sd_a["param_groups"]] == [g["params"] for g in sd_b["param_groups"]]
    assert any(g["weight_decay"] == 0.0 for g in sd_a["param_groups"])  # biases and norms: no decay


@pytest.mark.parametrize("torch_kw", [dict(foreach=True), dict(fused=True)])
def test_adamw_state_dicts_move_between_this_and_torchs(torch_kw):
    # torch's state -> ours, and ours -> torch's, then both go on like one optimizer that never stopped
    a, b, c = _model(), _model(), _model()
    ref = torch.optim.AdamW(param_groups(a, 0.1), lr=1e-2, fused=True)
    _train(a, ref, 6)

    first = torch.optim.AdamW(param_groups(b, 0.1), lr=1e-2, **torch_kw)
    _train(b, first, 3)
    ours = AdamW(param_groups(b, 0.1), lr=1e-2)
    ours.load_state_dict(first.state_dict())
    b2 = _model()
    b2.load_state_dict(b.state_dict())
    ours2 = AdamW(param_groups(b2, 0.1), lr=1e-2)
    ours2.load_state_dict(ours.state_dict())
    _train(b2, ours2, 3, start=3)

    ours_c = AdamW(param_groups(c, 0.1), lr=1e-2)
    _train(c, ours_c, 3)
    back = torch.optim.AdamW(param_groups(c, 0.1), lr=1e-2, fused=True)
    back.load_state_dict(ours_c.state_dict())
    _train(c, back, 3, start=3)

    for pa, pb, pc in zip(a.parameters(), b2.parameters(), c.parameters()):
        if torch_kw.get("fused"):
            assert torch.equal(pa, pb)
        else:  # foreach rounds differently for the first three steps
            assert torch.allclose(pa, pb, atol=1e-6)
        assert torch.equal(pa, pc)


def test_load_state_dict_refuses_other_parameters():
    opt = build_optimizer("adamw", _model(), 1e-3)
    other = torch.optim.AdamW(torch.nn.Linear(6, 8).parameters())
    with pytest.raises(ValueError, match="does not fit"):
        opt.load_state_dict(other.state_dict())


def test_lamb_and_adamw_train_and_zero_grads():
    for name in ("adamw", "lamb"):
        m = _model()
        before = [p.detach().clone() for p in m.parameters()]
        opt = build_optimizer(name, m, 1e-2)
        _train(m, opt, 3)
        assert all(p.grad is None for p in m.parameters())
        assert all(not torch.equal(p, q) for p, q in zip(m.parameters(), before))
        assert {int(s["step"]) for s in opt.state_dict()["state"].values()} == {3}


def test_building_and_stepping_the_optimizer_does_not_import_dynamo():
    # torch.optim.Optimizer imports torch._dynamo at its first use (about a second of start-up)
    code = ("import sys, torch; from uer_like.training.optim import build_optimizer; "
            "m = torch.nn.Linear(4, 2); o = build_optimizer('adamw', m, 1e-3); m(torch.ones(1, 4)).sum().backward(); "
            "o.step(); o.zero_grad(); o.load_state_dict(o.state_dict()); "
            "torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
