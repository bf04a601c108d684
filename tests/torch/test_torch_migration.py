"""The 1.0 spellings of structdrop.torch: the old argument orders, keyword names, positional
strengths and result fields keep their old answers with a FutureWarning at the caller's line, and
an old call the shapes cannot tell apart is refused with the keyword call."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sdt = pytest.importorskip("structdrop.torch")

SPECS = [
    sdt.SchemeSpec("dropout", 0.6),
    sdt.SchemeSpec("dropblock", 0.4, 2),
    sdt.SchemeSpec("overlapping", 0.7**2, 2, 0.3),
]


def _old(call):
    """Run ``call`` expecting exactly one FutureWarning that points at this file."""
    with pytest.warns(FutureWarning) as rec:
        value = call()
    assert len(rec) >= 1
    assert all(w.filename == __file__ for w in rec), [w.filename for w in rec]
    return value


def _problem(a=2, b=3, d=4, N=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = {"X": (b, N), "Y": (a, N), "U": (a, d), "V": (b, d)}
    return {k: torch.randn(*s, generator=g, dtype=torch.float64) for k, s in shape.items()}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
@pytest.mark.parametrize("dims", [(2, 3, 4, 5), (1, 6, 2, 7), (4, 4, 2, 9)])
def test_objective_old_order_same_value_with_warning(spec, dims):
    t = _problem(*dims)
    X, Y, U, V = t["X"], t["Y"], t["U"], t["V"]
    new = sdt.objective(spec, X, Y, U, V)
    assert float(sdt.objective(spec, X=X, Y=Y, U=U, V=V)) == float(new)
    for call in (
        lambda: sdt.objective(spec, Y, U, V, X),
        lambda: sdt.objective(spec, Y, U, V, X=X),
        lambda: sdt.objective(spec, Y, U=U, V=V, X=X),
    ):
        assert float(_old(call)) == float(new)
    G = V.T @ X
    new = sdt.feature_objective(spec, G, Y, U)
    assert float(_old(lambda: sdt.feature_objective(spec, Y, U, G))) == float(new)
    assert float(_old(lambda: sdt.squared_error(Y, U, G))) == float(sdt.squared_error(G, Y, U))
    mean = torch.full((U.shape[1],), 0.5, dtype=torch.float64)
    cov = 0.25 * torch.eye(U.shape[1], dtype=torch.float64)
    new = sdt.generalized_objective(G, Y, U, mean, cov)
    assert float(_old(lambda: sdt.generalized_objective(Y, U, G, mean, cov))) == float(new)
    assert float(_old(lambda: sdt.generalized_objective(Y, U, G, mean=mean, covariance=cov))) == (
        float(new)
    )


def test_ambiguous_old_order_is_refused_with_the_keyword_call():
    # every array n x n: both orders fit, so nothing may be guessed
    t = _problem(3, 3, 3, 3)
    X, Y, U, V = t["X"], t["Y"], t["U"], t["V"]
    with pytest.raises(TypeError, match=r"objective\(X=X, Y=Y, U=U, V=V\)"):
        sdt.objective(SPECS[0], Y, U, V, X)
    with pytest.raises(TypeError, match="ambiguous"):
        sdt.feature_objective(SPECS[0], Y, U, V.T @ X)
    with pytest.raises(TypeError, match=r"squared_error\(G=G, Y=Y, U=U\)"):
        sdt.squared_error(Y, U, X)
    # by keyword the same arrays are accepted without a warning
    sdt.objective(SPECS[0], X=X, Y=Y, U=U, V=V)


def test_dropconnect_regularizer_input_renamed_x():
    t = _problem()
    new = sdt.dropconnect_regularizer(t["U"], t["V"], X=t["X"], theta=0.5)
    old = _old(lambda: sdt.dropconnect_regularizer(t["U"], t["V"], G=t["X"], theta=0.5))
    assert float(old) == float(new)
    with pytest.raises(TypeError, match="both"):
        sdt.dropconnect_regularizer(t["U"], t["V"], G=t["X"], X=t["X"], theta=0.5)


def test_conv_objective_old_order_and_keywords():
    layer = sdt.DropBlock2d(2, p=0.3)
    g = torch.Generator().manual_seed(1)
    F = torch.randn(3, 2, 4, 4, generator=g)
    Y, W, c = torch.randn(3, 2, generator=g), torch.randn(2, 32, generator=g), torch.randn(2)
    new = float(sdt.dropblock_conv_objective(layer, F, Y, W, c))
    assert _old(lambda: float(sdt.dropblock_conv_objective(layer, Y, W, F, c))) == new
    assert _old(
        lambda: float(sdt.dropblock_conv_objective(layer, targets=Y, weight=W, features=F))
    ) == (float(sdt.dropblock_conv_objective(layer, F, Y, W)))
    reg = float(sdt.dropblock_conv_regularizer(layer, W, batch_features=F))
    assert _old(lambda: float(sdt.dropblock_conv_regularizer(layer, W, features=F))) == reg


@torch.no_grad()
def test_linear_weight_dropout_objective_old_order_and_keywords():
    torch.manual_seed(0)
    layer = sdt.weight_dropout(torch.nn.Linear(3, 4), p=0.3)
    readout = torch.nn.Linear(4, 2)
    X, Y = torch.randn(6, 3), torch.randn(6, 2)
    new = float(sdt.linear_weight_dropout_objective(X, Y, readout, layer))
    assert _old(lambda: float(sdt.linear_weight_dropout_objective(Y, readout, layer, X))) == new
    assert (
        _old(
            lambda: float(
                sdt.linear_weight_dropout_objective(
                    targets=Y, readout=readout, layer=layer, inputs=X
                )
            )
        )
        == new
    )
    with pytest.raises(TypeError, match="nn.Linear"):
        sdt.linear_weight_dropout_objective(X, Y, layer.weight, layer)


def test_new_order_warns_nothing(recwarn):
    t = _problem()
    sdt.objective(SPECS[1], t["X"], t["Y"], t["U"], t["V"])
    sdt.feature_objective(SPECS[1], t["V"].T @ t["X"], t["Y"], t["U"])
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]
    assert np.isfinite(float(sdt.squared_error(t["V"].T @ t["X"], t["Y"], t["U"])))


def _same_masks(a, b, x):
    torch.manual_seed(5)
    out_a = a(x)
    torch.manual_seed(5)
    return torch.equal(out_a, b(x))


def test_dropblock1d_old_order_is_the_same_layer():
    x = torch.ones(64, 12)
    new = sdt.DropBlock1d(4, theta=0.3, overlapping=False)
    for old in (
        _old(lambda: sdt.DropBlock1d(0.3, 4)),
        _old(lambda: sdt.DropBlock1d(0.3, block_size=4)),
    ):
        assert (old.theta, old.block_size, old.overlapping) == (0.3, 4, False)
        assert _same_masks(old, new, x)
    # the values prove the order: a block size first and a probability second is the new order
    # with the strength by position, which is refused with the keyword spelling
    with pytest.raises(TypeError, match=r"DropBlock1d\(4, theta=0.3\)"):
        sdt.DropBlock1d(4, 0.3)


def test_dropblock1d_default_overlap_warns_and_keeps_the_paper_blocks():
    layer = _old(lambda: sdt.DropBlock1d(4, p=0.5))
    assert layer.overlapping is False
    assert _same_masks(layer, sdt.DropBlock1d(4, p=0.5, overlapping=False), torch.ones(64, 8))
    assert _old(lambda: sdt.DropBlock1d(block_size=4, theta=0.5)).overlapping is False


@pytest.mark.parametrize("strength", [{"p": 0.4}, {"theta": 0.6}])
def test_dropblock1d_overlapping_is_overlappingdropblock1d(strength):
    over = sdt.DropBlock1d(3, overlapping=True, **strength)
    same = sdt.OverlappingDropBlock1d(3, **strength)
    assert over.gamma == same.gamma == pytest.approx(1 - 0.6 ** (1 / 3), rel=1e-15)
    assert over.keep_probabilities(7) == same.keep_probabilities(7)
    assert _same_masks(over, same, torch.ones(128, 7, dtype=torch.float64))
    assert over.theta == pytest.approx(0.6, rel=1e-15) and over.p == pytest.approx(0.4, rel=1e-15)


def test_strength_is_exactly_one_of_p_and_theta():
    for make in (
        lambda **k: sdt.DropBlock1d(2, overlapping=False, **k),
        lambda **k: sdt.DropConnectLinear(3, 2, **k),
        lambda **k: sdt.WeightDropout(**k),
        lambda **k: sdt.DropBlock2d(2, **k),
    ):
        with pytest.raises(ValueError, match="exactly one"):
            make()
        with pytest.raises(ValueError, match="exactly one"):
            make(p=0.5, theta=0.5)
        assert make(p=0.25).p == make(theta=0.75).p == 0.25
    with pytest.raises(ValueError, match="exactly one"):
        sdt.OverlappingDropBlock1d(3, gamma=0.1, p=0.5)


def test_positional_strengths_of_the_other_layers_warn():
    old = _old(lambda: sdt.OverlappingDropBlock1d(3, 0.2))
    assert old.gamma == sdt.OverlappingDropBlock1d(3, gamma=0.2).gamma
    old = _old(lambda: sdt.OverlappingDropBlock1d(3, None, 0.5))
    assert old.gamma == sdt.OverlappingDropBlock1d(3, theta=0.5).gamma
    old = _old(lambda: sdt.DropConnectLinear(4, 2, 0.7, False))
    assert (old.theta, old.bias, old.per_sample) == (0.7, None, True)
    assert _old(lambda: sdt.WeightDropout(0.3)).p == sdt.WeightDropout(p=0.3).p == 0.3
    # the warning shows the user's call, without self
    with pytest.warns(FutureWarning, match=r"write WeightDropout\(p=\.\.\.\)"):
        sdt.WeightDropout(0.3)
    with pytest.warns(FutureWarning, match=r"write DropConnectLinear\(\.\.\., \.\.\., theta="):
        sdt.DropConnectLinear(4, 2, 0.7)


def _monitor_parts():
    torch.manual_seed(0)
    trunk = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.ReLU())
    drop, head = sdt.DropBlock1d(5, p=0.5, overlapping=False), torch.nn.Linear(10, 3)
    data = [(torch.randn(8, 6), torch.randint(0, 3, (8,))) for _ in range(2)]
    return trunk, head, drop, data


def test_bound_monitor_every_is_record_every():
    trunk, head, drop, data = _monitor_parts()
    old = _old(lambda: sdt.BoundMonitor(trunk, head, drop, data, num_classes=3, every=2))
    assert old.record_every == 2
    assert _old(lambda: old.every) == 2
    assert [old.step() is None for _ in range(4)] == [True, False, True, False]
    with pytest.raises(TypeError, match="both"):
        sdt.BoundMonitor(trunk, head, drop, data, num_classes=3, every=2, record_every=2)


def test_bound_record_relative_gap_and_its_old_name():
    trunk, head, drop, data = _monitor_parts()
    rec = sdt.BoundMonitor(trunk, head, drop, data, num_classes=3).evaluate()
    assert rec.relative_gap == pytest.approx(rec.objective / rec.lower_bound - 1, rel=1e-14)
    assert _old(lambda: rec.gap) == rec.relative_gap
    assert "relative_gap" in rec.as_dict() and "gap" not in rec.as_dict()


def test_deep_result_gap_keeps_its_ratio_under_the_old_name():
    from structdrop.torch.deep import DeepExperimentResult

    res = DeepExperimentResult(
        np.arange(2), np.array([9.0, 6.0]), np.array([7.0]), 4.0, 5.0, np.ones(2), np.ones(2),
        1, 0.5, 5, 80, 1 / 16, 16 / 17, "small_cnn", "digits", 10, "cpu", 0.1,
    )  # fmt: skip
    assert res.relative_gap == 0.5
    assert _old(lambda: res.gap) == 1.5  # the ratio it always was, not relative_gap


def test_bound_callback_every_is_record_every():
    lightning = pytest.importorskip("structdrop.torch.lightning")
    pytest.importorskip("lightning")
    cb = _old(lambda: lightning.BoundCallback("f", "h", "d", every=3))
    assert cb.record_every == 3 and _old(lambda: cb.every) == 3


def test_no_shape_family_gives_a_silently_wrong_objective():
    # every (a, b, d, N) in 1..3: an old-order call is either proved by the shapes (warned, the
    # same value as the keyword call) or refused; a new-order call is taken without a warning or
    # refused as ambiguous; neither ever returns another value
    import itertools
    import warnings

    spec = sdt.SchemeSpec("dropout", 0.5)
    for dims in itertools.product((1, 2, 3), repeat=4):
        t = _problem(*dims, seed=sum(dims))
        X, Y, U, V = t["X"], t["Y"], t["U"], t["V"]
        exact = float(sdt.objective(spec, X=X, Y=Y, U=U, V=V))
        for args in ((Y, U, V, X), (X, Y, U, V)):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    value = float(sdt.objective(spec, *args))
                except TypeError as error:
                    assert "objective(X=X, Y=Y, U=U, V=V)" in str(error), dims
                    continue
            assert value == exact, (dims, args is t)
            old = args[0] is Y
            assert bool([w for w in caught if w.category is FutureWarning]) == old, dims
