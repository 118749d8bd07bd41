"""The peers under the window: torch's fastest AdamW/SGD, Muon + AdamW, Prodigy; `group["impl"]`.

Muon's routing on the suite's networks: the hidden `Linear` weights and convolution kernels go to
Muon (a kernel as its out × in·kh·kw matrix), embeddings, heads (tied or not), biases and norms
to AdamW.
"""

from __future__ import annotations

import copy

import prodigyopt
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from annealbench.optimizers import build_optimizer
from annealbench.optimizers.peers import FlatMuon, fastest_impl, muon_flags
from annealbench.optimizers.window import make_window, progress
from annealbench.tasks import get_task
from annealbench.tasks.base import param_groups


def test_adamw_and_sgd_run_torch_s_fused_kernel_on_the_cpu_and_record_it() -> None:
    for name in ("adamw", "sgd"):
        w = torch.ones(4)
        opt = build_optimizer(name, [w], total_steps=4)
        assert opt.defaults["fused"] is True
        assert [g["impl"] for g in opt.param_groups] == ["fused"]
    assert fastest_impl([torch.ones(2, device="meta")]) == "foreach"  # no fused kernel there
    assert fastest_impl([torch.ones(2, dtype=torch.int64)]) == "foreach"
    explicit = build_optimizer("adamw", [torch.ones(2)], total_steps=4, fused=False, foreach=False)
    assert explicit.param_groups[0]["impl"] == "for-loop"


def _model_params() -> list[dict]:
    torch.manual_seed(0)
    hidden, embed, bias = torch.randn(6, 4), torch.randn(10, 4), torch.zeros(6)
    return [{"params": [hidden]}, {"params": [embed], "muon": False}, {"params": [bias], "weight_decay": 0.0}]


def test_muon_takes_hidden_matrices_and_adamw_the_rest_under_one_window() -> None:
    groups = _model_params()
    hidden, embed, bias = (g["params"][0] for g in groups)
    opt = build_optimizer("muon", groups, total_steps=4, lr=0.02, window="linear")
    assert [g["impl"] for g in opt.param_groups] == ["for-loop", "fused", "fused"]
    assert [g["params"][0] is p for g, p in zip(opt.param_groups, (hidden, embed, bias))] == [True] * 3
    assert isinstance(opt._muon, torch.optim.Muon) and opt._muon.param_groups[0]["params"] == [hidden]
    twin = hidden.detach().clone()
    reference = torch.optim.Muon([twin], lr=0.02, weight_decay=0.0, adjust_lr_fn="match_rms_adamw")
    gen = torch.Generator().manual_seed(1)
    for k in range(4):
        for p in (hidden, embed, bias):
            p.grad = torch.randn(p.shape, generator=gen)
        twin.grad = hidden.grad.clone()
        reference.param_groups[0]["lr"] = 0.02 * (1 - k / 4)
        opt.step()
        reference.step()
        assert [g["mu_t"] for g in opt.param_groups] == pytest.approx([0.02 * (1 - k / 4)] * 3)
        assert torch.equal(hidden, twin)
    assert set(opt.state[embed]) >= {"exp_avg", "exp_avg_sq"} and "momentum_buffer" in opt.state[hidden]


def test_muon_state_dict_round_trip_resumes_exactly() -> None:
    def run(resume_at):
        groups = _model_params()
        params = [g["params"][0] for g in groups]
        opt = build_optimizer("muon", groups, total_steps=8, lr=0.02)
        gen = torch.Generator().manual_seed(2)
        for k in range(8):
            if k == resume_at:
                saved = copy.deepcopy({"p": [p.clone() for p in params], "opt": opt.state_dict()})
                groups = _model_params()
                params = [g["params"][0] for g in groups]
                for p, q in zip(params, saved["p"]):
                    p.copy_(q)
                opt = build_optimizer("muon", groups, total_steps=8, lr=0.02)
                opt.load_state_dict(saved["opt"])
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen)
            opt.step()
        return params

    for a, b in zip(run(None), run(5)):
        assert torch.equal(a, b)


# --- Muon's routing on the suite's networks -----------------------------------------------
def _net(task: str, **overrides):
    built = get_task(task, "smoke", **overrides)
    return built.spec.make_net(built.config)


def _muon_split(net: torch.nn.Module) -> tuple[set[str], set[str]]:
    """The names of the tensors Muon and AdamW step when `muon` runs on `net`'s param groups."""
    opt = build_optimizer("muon", param_groups(net), total_steps=4, lr=0.02)
    names = {id(p): n for n, p in net.named_parameters()}
    split = [{names[id(p)] for g in inner.param_groups for p in g["params"]}
             for inner in (opt._muon, opt._adamw)]
    assert split[0] | split[1] == set(names.values()) and not split[0] & split[1]
    return split[0], split[1]


def _weights(names, *kinds: str) -> set[str]:
    return {n for n in names if n.endswith(tuple(f"{k}.weight" for k in kinds))}


def test_muon_takes_the_resnet_s_conv_kernels_and_adamw_its_head_and_norms() -> None:
    net = _net("cifar10", model="resnet18")
    muon, adamw = _muon_split(net)
    kernels = {n for n, p in net.named_parameters() if p.ndim == 4}
    assert muon == kernels and len(kernels) == 20  # stem, 16 block convs, 3 shortcut convs
    assert {"head.weight", "head.bias", "stem.1.weight", "stages.0.bn1.bias"} <= adamw


def test_muon_takes_the_vit_s_hidden_linears_and_patch_kernel_and_adamw_the_rest() -> None:
    net = _net("cifar10", model="vit", vit_depth=2)
    muon, adamw = _muon_split(net)
    names = dict(net.named_parameters())
    assert muon == _weights(names, "qkv", "proj", "mlp.0", "mlp.2") | {"patches.weight"}
    assert len(muon) == 9
    assert {"pos", "head.weight", "head.bias", "patches.bias", "ln.weight",
            "blocks.1.ln2.weight", "blocks.0.attn.qkv.bias"} <= adamw


def test_muon_leaves_the_char_gpt_s_tied_embedding_head_and_positions_to_adamw() -> None:
    net = _net("shakespeare", layers=2)
    muon, adamw = _muon_split(net)
    names = dict(net.named_parameters())
    assert muon == _weights(names, "qkv", "proj", "mlp.0", "mlp.2") and len(muon) == 8
    # the output head is the token embedding itself (tied): one tensor, AdamW's
    idx = torch.zeros(1, 4, dtype=torch.long)
    x = net.ln(net.blocks(net.tok(idx) + net.pos[:, :4]))
    assert torch.equal(net(idx), x @ net.tok.weight.t())
    assert {"tok.weight", "pos", "ln.weight", "blocks.0.attn.proj.bias"} <= adamw


@pytest.mark.parametrize("task", ["teacher", "diabetes"])
def test_muon_takes_an_mlp_s_hidden_layers_and_adamw_its_output_layer(task) -> None:
    net = _net(task)
    muon, adamw = _muon_split(net)
    linears = [n for n, p in net.named_parameters() if p.ndim == 2]
    assert muon == set(linears[:-1]) and len(linears) == 3
    assert adamw == {linears[-1]} | {n for n, p in net.named_parameters() if p.ndim == 1}


def test_the_muon_marks_leave_every_other_optimizer_s_groups_as_they_were() -> None:
    for net in (_net("cifar10", model="vit"), _net("shakespeare"), _net("digits")):
        groups = param_groups(net)
        params = [p for p in net.parameters()]
        assert [g["params"] for g in groups] == [[p for p in params if p.ndim >= 2],
                                                 [p for p in params if p.ndim < 2]]
        assert [g.get("weight_decay") for g in groups] == [None, 0.0]
        opt = build_optimizer("muphi", groups, total_steps=4)
        assert [g["params"] for g in opt.param_groups] == [g["params"] for g in groups]


def test_muon_marks_are_checked_against_their_group() -> None:
    w, b = torch.zeros(3, 2), torch.zeros(3)
    assert muon_flags({"params": [w, b]}) == [True, False]  # unmarked: the 2-D tensors
    assert muon_flags({"params": [w, b], "muon": False}) == [False, False]
    with pytest.raises(ValueError, match="2 flags for 1 tensors"):
        muon_flags({"params": [w], "muon": (True, False)})
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        muon_flags({"params": [b], "muon": (True,)})
    with pytest.raises(ValueError, match="two or more dimensions"):
        FlatMuon([b])


# --- a convolution kernel through Muon -------------------------------------------------------
@pytest.mark.parametrize("adjust_lr_fn", ["match_rms_adamw", "original"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_a_conv_kernel_s_muon_step_is_torch_s_muon_step_of_its_matrix(adjust_lr_fn, channels_last) -> None:
    gen = torch.Generator().manual_seed(4)
    # (4, 2, 3, 3): the matrix is 4 × 18, whose lr adjustment differs from the kernel's (4, 2)
    kernel = torch.randn(4, 2, 3, 3, generator=gen)
    if channels_last:
        kernel = kernel.to(memory_format=torch.channels_last)
    twin = kernel.detach().reshape(4, 18).clone()
    opt = build_optimizer("muon", [{"params": [kernel], "muon": (True,)}], total_steps=3, lr=0.02,
                          window="constant", weight_decay=0.1, adjust_lr_fn=adjust_lr_fn)
    reference = torch.optim.Muon([twin], lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True,
                                 adjust_lr_fn=adjust_lr_fn)
    for _ in range(3):
        kernel.grad = torch.randn(kernel.shape, generator=gen)
        if channels_last:
            kernel.grad = kernel.grad.to(memory_format=torch.channels_last)
        twin.grad = kernel.grad.reshape(4, 18).clone()
        opt.step()
        reference.step()
        assert torch.equal(kernel.reshape(4, 18), twin)
    assert kernel.is_contiguous(memory_format=torch.channels_last) == channels_last
    buf = opt.state[kernel]["momentum_buffer"]
    assert buf.shape == kernel.shape and torch.equal(buf.reshape(4, 18),
                                                     reference.state[twin]["momentum_buffer"])


def test_muon_trains_a_channels_last_cnn_through_the_task_module() -> None:
    from tests.tasks.helpers import fit

    task = get_task("digits", "smoke", channels_last=True, max_steps=6, val_every=3, log_every=3)
    factory = lambda groups, total: build_optimizer("muon", groups, total_steps=total, lr=0.02)  # noqa: E731
    module, logger, trainer = fit(task, factory)
    opt = trainer.optimizers[0]
    kernels = [p for p in module.net.parameters() if p.ndim == 4]
    assert [p for g in opt._muon.param_groups for p in g["params"]][:2] == kernels
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
    assert all(torch.isfinite(torch.tensor(v)) for _, v in logger.series("train/loss"))
    assert module.diverged_at_step is None


def _conv_model_params() -> list[dict]:
    torch.manual_seed(0)
    kernel, hidden, embed, head, bias = (torch.randn(6, 3, 3, 3), torch.randn(6, 4),
                                         torch.randn(10, 4), torch.randn(2, 6), torch.zeros(6))
    return [{"params": [kernel, hidden, embed, head], "muon": (True, True, False, False)},
            {"params": [bias], "weight_decay": 0.0, "muon": False}]


def test_muon_with_conv_kernels_state_dict_round_trip_resumes_exactly() -> None:
    def run(resume_at):
        groups = _conv_model_params()
        params = [p for g in groups for p in g["params"]]
        opt = build_optimizer("muon", groups, total_steps=8, lr=0.02, weight_decay=0.01)
        gen = torch.Generator().manual_seed(5)
        for k in range(8):
            if k == resume_at:
                saved = copy.deepcopy({"p": [p.clone() for p in params], "opt": opt.state_dict()})
                groups = _conv_model_params()
                params = [p for g in groups for p in g["params"]]
                for p, q in zip(params, saved["p"]):
                    p.copy_(q)
                opt = build_optimizer("muon", groups, total_steps=8, lr=0.02, weight_decay=0.01)
                opt.load_state_dict(saved["opt"])
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen)
            opt.step()
        assert [len(g["params"]) for g in opt.param_groups] == [2, 2, 1]  # Muon's, then AdamW's
        return params

    for a, b in zip(run(None), run(5)):
        assert torch.equal(a, b)


def test_prodigy_is_prodigyopt_with_the_window_as_its_schedule() -> None:
    w, twin = torch.ones(5), torch.ones(5)
    opt = build_optimizer("prodigy", [w], total_steps=6, window="cosine")
    reference = prodigyopt.Prodigy([twin], lr=1.0)
    window = make_window("cosine")
    gen = torch.Generator().manual_seed(3)
    for k in range(6):
        w.grad = torch.randn(5, generator=gen) + w
        twin.grad = w.grad.clone()
        reference.param_groups[0]["lr"] = window(progress(k, 6))
        d = reference.param_groups[0]["d"]
        opt.step()
        reference.step()
        assert torch.equal(w, twin)
        assert opt.param_groups[0]["mu_t"] == pytest.approx(d * window(progress(k, 6)))
    assert opt.param_groups[0]["impl"] == "for-loop"


# --- host reads: no peer the project controls reads a tensor's value in its step ----------------
class HostReads(TorchDispatchMode):
    """Counts reads of a tensor's value into Python (`.item()`, `float(t)`, `bool(t)`, `if t:`):
    each is `aten._local_scalar_dense`, on a GPU a wait for every queued kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


def _reads_per_step(name: str, steps: int = 3, **hparams) -> tuple[list[int], int]:
    net = _net("cifar10", model="resnet18")
    opt = build_optimizer(name, param_groups(net), total_steps=10, **hparams)
    gen = torch.Generator().manual_seed(6)
    counts = []
    for _ in range(steps):
        for p in net.parameters():
            p.grad = torch.randn(p.shape, generator=gen)
        with HostReads() as reads:
            opt.step()
        counts.append(reads.count)
    return counts, sum(1 for _ in net.parameters())


@pytest.mark.parametrize("name, hparams", [("adamw", {}), ("sgd", {}), ("muon", {"lr": 0.02}),
                                           ("sf-adamw", {}), ("muphi", {}),
                                           ("muphi", {"numerator": "parcor-c5b0935"})])
def test_the_project_s_steps_read_no_tensor_value_on_the_host(name, hparams) -> None:
    counts, _ = _reads_per_step(name, **hparams)
    assert counts == [0, 0, 0]


def test_prodigy_s_host_reads_are_prodigyopt_s_two_per_tensor_per_step() -> None:
    """`prodigyopt.Prodigy.step` (not patched here; docs/performance.md): `torch.dot(...).item()`
    and `s.abs().sum().item()` for every tensor on every step, and `p.any()` once per tensor at
    its first step. The window adds none."""
    counts, tensors = _reads_per_step("prodigy")
    assert tensors == 62 and counts == [3 * tensors, 2 * tensors, 2 * tensors]
