"""weight_dropout: outputs and gradients against hand-written masked forwards (a Python LSTM loop),
one mask per call shared by all time steps, per-sample masks, and the exact linear objective
against enumeration of all masks and Monte Carlo."""

import itertools
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sdt = pytest.importorskip("structdrop.torch")


def _mask(module, name):
    return module.parametrizations[name][0]._mask


def _manual_lstm(x, w_ih, w_hh, b_ih, b_hh):
    """One-layer batch-first LSTM written out step by step (PyTorch's gate order i, f, g, o)."""
    n, steps, _ = x.shape
    hidden = w_hh.shape[1]
    h = x.new_zeros(n, hidden)
    c = x.new_zeros(n, hidden)
    outs = []
    for t in range(steps):
        gates = x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1)


def test_linear_forward_and_gradient_match_a_hand_written_masked_layer():
    torch.manual_seed(40)
    p = 0.4
    layer = sdt.weight_dropout(torch.nn.Linear(5, 3, dtype=torch.float64), p=p)
    x = torch.randn(6, 5, dtype=torch.float64)
    out = layer(x)
    mask = _mask(layer, "weight").to(torch.float64)
    w = layer.parametrizations.weight.original
    expected = x @ (w * mask / (1 - p)).T + layer.bias
    assert torch.allclose(out, expected, rtol=1e-14, atol=1e-14)
    (g,) = torch.autograd.grad(out.square().sum(), w)
    w_ref = w.detach().clone().requires_grad_()
    (g_ref,) = torch.autograd.grad(
        (x @ (w_ref * mask / (1 - p)).T + layer.bias).square().sum(), w_ref
    )
    assert torch.allclose(g, g_ref, rtol=1e-13, atol=1e-13)
    # one mask for the whole call: identical rows give identical outputs; a new mask per call
    same = layer(x[:1].expand(4, 5))
    assert torch.equal(same, same[:1].expand(4, 3))
    masks = set()
    for _ in range(20):
        layer(x)
        masks.add(tuple(_mask(layer, "weight").reshape(-1).tolist()))
    assert len(masks) > 15
    layer.eval()
    assert torch.equal(layer(x), x @ w.T + layer.bias)


def test_lstm_one_mask_over_all_time_steps_and_gradients():
    torch.manual_seed(41)
    p = 0.5
    lstm = torch.nn.LSTM(3, 4, batch_first=True, dtype=torch.float64)
    sdt.weight_dropout(lstm, ("weight_hh_l0",), p=p)
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RNN weight warning on the CPU
        out, _ = lstm(x)
    mask = _mask(lstm, "weight_hh_l0").to(torch.float64)
    w_hh = lstm.parametrizations.weight_hh_l0.original
    ref = _manual_lstm(
        x, lstm.weight_ih_l0, w_hh * mask / (1 - p), lstm.bias_ih_l0, lstm.bias_hh_l0
    )
    assert torch.allclose(out, ref, rtol=1e-12, atol=1e-13)  # the same masked weight at every step
    loss = out.square().sum()
    grads = torch.autograd.grad(loss, [w_hh, lstm.weight_ih_l0])
    ref_grads = torch.autograd.grad(ref.square().sum(), [w_hh, lstm.weight_ih_l0])
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-10, atol=1e-12)
    assert torch.all(grads[0][mask == 0] == 0)  # dropped weights get no gradient
    lstm(x)  # the next call draws a new mask (64 entries: equal by chance with probability 2^-64)
    assert not torch.equal(_mask(lstm, "weight_hh_l0").to(torch.float64), mask)
    lstm.eval()
    plain = _manual_lstm(x, lstm.weight_ih_l0, w_hh, lstm.bias_ih_l0, lstm.bias_hh_l0)
    assert torch.allclose(lstm(x)[0], plain, rtol=1e-12, atol=1e-13)


def test_gru_and_finite_differences():
    torch.manual_seed(42)
    gru = torch.nn.GRU(2, 3, batch_first=True, dtype=torch.float64)
    sdt.weight_dropout(gru, ("weight_hh_l0", "weight_ih_l0"), p=0.3, redraw="manual")
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    w = gru.parametrizations.weight_hh_l0.original
    out = gru(x)[0]
    assert torch.equal(gru(x)[0], out)  # redraw="manual": the same masks until asked
    # finite differences of the loss in one weight entry, masks held fixed
    (g,) = torch.autograd.grad(gru(x)[0].sum(), w)
    i, j, eps = 1, 2, 1e-6
    with torch.no_grad():
        w[i, j] += eps
        up = gru(x)[0].sum()
        w[i, j] -= 2 * eps
        down = gru(x)[0].sum()
        w[i, j] += eps
    assert math.isclose(float(g[i, j]), float((up - down) / (2 * eps)), rel_tol=1e-6, abs_tol=1e-9)
    sdt.redraw_weight_masks(gru)
    draws = {tuple(gru(x)[0].reshape(-1).tolist()) for _ in range(3)}
    assert len(draws) == 1
    sdt.redraw_weight_masks(gru)
    assert not torch.equal(gru(x)[0], out)


def test_lstm_cell_shares_a_mask_over_a_sequence_with_manual_redraw():
    torch.manual_seed(43)
    cell = sdt.weight_dropout(torch.nn.LSTMCell(2, 3), ("weight_hh",), p=0.5, redraw="manual")
    masks = []
    h = c = torch.zeros(1, 3)
    for _ in range(4):
        h, c = cell(torch.randn(1, 2), (h, c))
        masks.append(_mask(cell, "weight_hh").clone())
    assert all(torch.equal(m, masks[0]) for m in masks)
    sdt.redraw_weight_masks(cell)
    cell(torch.randn(1, 2), (h, c))
    assert not torch.equal(_mask(cell, "weight_hh"), masks[0])


def test_mask_rate_and_per_sample_linear():
    torch.manual_seed(44)
    p = 0.6
    conv = sdt.weight_dropout(torch.nn.Conv2d(8, 8, 3), p=p)
    conv(torch.randn(1, 8, 5, 5))
    kept = _mask(conv, "weight").double().mean().item()
    n = conv.weight.numel()
    assert abs(kept - (1 - p)) <= 5 * math.sqrt(p * (1 - p) / n)
    # per-sample masks: mean W x + b and variance beta sum_j W_oj^2 x_j^2 (independent weights)
    layer = sdt.weight_dropout(
        torch.nn.Linear(5, 3, dtype=torch.float64), theta=0.4, per_sample=True
    )
    x = torch.randn(5, dtype=torch.float64)
    draws = 20000
    out = layer(x.expand(draws, 5)).detach().numpy()
    W, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    var = 0.6 / 0.4 * (W**2 @ x.numpy() ** 2)
    assert np.all(np.abs(out.mean(0) - (W @ x.numpy() + b)) <= 5 * np.sqrt(var / draws))
    assert np.all(np.abs(out.var(0) - var) <= 5 * var * math.sqrt(2.0 / draws) * 2)
    assert np.unique(out[:50], axis=0).shape[0] > 40
    assert layer(torch.randn(2, 4, 5, dtype=torch.float64)).shape == (2, 4, 3)
    layer.eval()
    assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))


def _enumerated_loss(Y, U, c, W, bias, X, p):
    """E ||Y - (X (M * W / (1 - p))^T + bias) U^T - c||^2 over all masks M of W (one per call)."""
    total = 0.0
    for bits in itertools.product([0.0, 1.0], repeat=W.size):
        M = np.array(bits).reshape(W.shape)
        prob = np.prod(np.where(M == 1, 1 - p, p))
        total += prob * np.sum((Y - ((X @ (M * W / (1 - p)).T + bias) @ U.T + c)) ** 2)
    return total


def test_linear_objective_equals_enumeration_and_monte_carlo():
    torch.manual_seed(45)
    p = 0.3
    layer = sdt.weight_dropout(torch.nn.Linear(3, 2, dtype=torch.float64), p=p)
    readout = torch.nn.Linear(2, 2, dtype=torch.float64)
    X = torch.randn(4, 3, dtype=torch.float64)
    Y = torch.randn(4, 2, dtype=torch.float64)
    W = layer.parametrizations.weight.original
    exact = _enumerated_loss(
        Y.numpy(),
        readout.weight.detach().numpy(),
        readout.bias.detach().numpy(),
        W.detach().numpy(),
        layer.bias.detach().numpy(),
        X.numpy(),
        p,
    )
    got = sdt.linear_weight_dropout_objective(X, Y, readout, layer)
    assert np.isclose(float(got.detach()), exact, rtol=1e-12)
    # the paper's Theorem 13 form (beta sum_i ||u_i||^2 ||X^T v_i||^2) is a different number here
    U, V = readout.weight.detach().numpy(), W.detach().numpy().T
    fit = float(((Y - readout(X @ W.T + layer.bias)) ** 2).sum().detach())
    printed = fit + p / (1 - p) * np.sum(np.sum(U**2, 0) * np.sum((X.numpy() @ V) ** 2, 0))
    assert abs(printed - exact) > 1e-3 * exact
    # Monte Carlo through the real module (one mask per call)
    losses = torch.stack([(Y - readout(layer(X))).square().sum() for _ in range(4000)]).detach()
    se = float(losses.std()) / math.sqrt(len(losses))
    assert abs(float(losses.mean()) - exact) <= 5 * se
    # differentiable; with no weight dropout the objective is the plain fit
    got.backward()
    assert W.grad is not None and readout.weight.grad is not None
    plain = torch.nn.Linear(3, 2, dtype=torch.float64)
    assert np.isclose(
        float(sdt.linear_weight_dropout_objective(X, Y, readout, plain).detach()),
        float((Y - readout(plain(X))).square().sum().detach()),
    )


def test_scheduled_weight_dropout():
    layer = sdt.weight_dropout(torch.nn.Linear(4, 4), p=0.5, warmup_steps=10)
    param = layer.parametrizations.weight[0]
    x = torch.randn(3, 4)
    plain = torch.nn.functional.linear(x, layer.parametrizations.weight.original, layer.bias)
    assert torch.equal(layer(x), plain)  # p = 0 before the warm-up
    sdt.DropRateScheduler(layer).step(5)
    assert param.p == pytest.approx(0.25)


def test_bad_input():
    with pytest.raises(ValueError, match="no parameter"):
        sdt.weight_dropout(torch.nn.Linear(2, 2), ("weight_hh_l0",), p=0.5)
    lin = sdt.weight_dropout(torch.nn.Linear(2, 2), p=0.5)
    with pytest.raises(ValueError, match="already"):
        sdt.weight_dropout(lin, p=0.5)
    with pytest.raises(ValueError, match="per_sample"):
        sdt.weight_dropout(torch.nn.LSTM(2, 2), ("weight_hh_l0",), p=0.5, per_sample=True)
    with pytest.raises(ValueError, match="exactly one"):
        sdt.weight_dropout(torch.nn.Linear(2, 2), p=0.5, theta=0.5)
    with pytest.raises(ValueError, match="p must lie"):
        sdt.weight_dropout(torch.nn.Linear(2, 2), p=1.0)
    with pytest.raises(ValueError, match="redraw"):
        sdt.weight_dropout(torch.nn.Linear(2, 2), p=0.5, redraw="step")
    with pytest.raises(TypeError, match="Module"):
        sdt.weight_dropout("lstm", p=0.5)
    with pytest.raises(ValueError, match="at least one"):
        sdt.weight_dropout(torch.nn.Linear(2, 2), (), p=0.5)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@needs_cuda
def test_cuda_lstm_matches_the_hand_written_masked_loop():
    torch.manual_seed(46)
    lstm = torch.nn.LSTM(3, 4, batch_first=True).cuda().double()
    sdt.weight_dropout(lstm, ("weight_hh_l0",), p=0.5)
    x = torch.randn(2, 6, 3, device="cuda", dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # cuDNN copies the non-contiguous masked weights (warned once)
        out, _ = lstm(x)
    mask = _mask(lstm, "weight_hh_l0").to(torch.float64)
    assert mask.device.type == "cuda"
    w_hh = lstm.parametrizations.weight_hh_l0.original
    ref = _manual_lstm(x, lstm.weight_ih_l0, w_hh * mask / 0.5, lstm.bias_ih_l0, lstm.bias_hh_l0)
    assert torch.allclose(out, ref, rtol=1e-9, atol=1e-10)


def test_stacked_bidirectional_lstm_flatten_parameters_and_state_dict():
    torch.manual_seed(47)
    names = ("weight_hh_l0", "weight_hh_l0_reverse", "weight_hh_l1", "weight_hh_l1_reverse")
    plain = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    dropped = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    dropped.load_state_dict(plain.state_dict())
    sdt.weight_dropout(dropped, names, p=0.5)
    dropped.flatten_parameters()  # a no-op on the CPU; must not freeze a mask
    x = torch.randn(3, 5, 3)
    first, _ = dropped(x)
    masks = [_mask(dropped, n).clone() for n in names]
    second, _ = dropped(x)
    assert not torch.equal(first, second)
    assert all(not torch.equal(_mask(dropped, n), m) for n, m in zip(names, masks))
    second.sum().backward()
    assert all(dropped.parametrizations[n].original.grad is not None for n in names)
    dropped.eval()
    assert torch.allclose(dropped(x)[0], plain(x)[0], atol=1e-6)
    # the parametrized module stores the original under parametrizations.<name>.original
    state = dropped.state_dict()
    assert "parametrizations.weight_hh_l1.original" in state and "weight_ih_l1" in state
    again = sdt.weight_dropout(
        torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True), names, p=0.5
    )
    again.load_state_dict(state)
    again.eval()
    assert torch.equal(again(x)[0], dropped(x)[0])


@pytest.mark.parametrize("change", ["schedule", "target"])
def test_manual_mask_stays_unbiased_when_the_rate_changes(change):
    """A "manual" mask drawn during warm-up keeps the scale of its own rate: the masked weight's
    mean stays 1 for a weight of ones (before: rescaled by the new rate, (1 - 0.1)/(1 - 0.3)
    = 1.29 after one step of a 0.6 warm-up over 6 steps). n = 2**20 entries, standard error
    sqrt(p/(1-p)/n) <= 3.3e-4 at p = 0.1."""
    torch.manual_seed(45)
    layer = torch.nn.Linear(1024, 1024, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    sdt.weight_dropout(layer, p=0.6, redraw="manual", warmup_steps=6)
    scheduler = sdt.DropRateScheduler(layer)
    scheduler.step()  # p = 0.1
    drawn = layer.parametrizations["weight"][0]
    p = drawn.p
    first = layer.weight.detach().clone()
    n = first.numel()
    assert abs(first.double().mean().item() - 1.0) <= 5 * math.sqrt(p / (1 - p) / n)
    if change == "schedule":
        scheduler.step(2)  # p = 0.3
    else:
        drawn.p = 0.3  # the target rate: p = 0.05 during the warm-up
    assert drawn.p != p
    torch.testing.assert_close(layer.weight.detach(), first, rtol=0, atol=0)  # the same mask
    sdt.redraw_weight_masks(layer)  # a new mask at the new rate, scaled by it
    p = drawn.p
    again = layer.weight.detach()
    assert not torch.equal(again, first)
    scale = torch.tensor(1.0 / (1.0 - p), dtype=torch.float32).item()  # as a float32 product
    assert set(torch.unique(again).tolist()) <= {0.0, scale}
    assert abs(again.double().mean().item() - 1.0) <= 5 * math.sqrt(p / (1 - p) / n)
