"""The deep-network experiment of Section 5.2 (Figure 3): DropBlock before the last layer of a CNN.

Network: trunk -> Linear(trunk features, 80) -> DropBlock1d(theta, 5) -> Linear(80, classes, no
bias), trained with the squared loss on one-hot labels. Write f(x) (80 values) for the features
that DropBlock masks, G = [f(x_1) ... f(x_N)] (80 x N) and U (classes x 80) for the last weight.
The exact expectation over masks of the training loss summed over the training set is Lemma 1 /
Lemma 10 with G in place of V^T X::

    E ||Y - U diag(z/theta) G||^2 = ||Y - U G||^2 + beta sum_blocks ||U_i G_i||^2,

and since U G ranges over matrices of the product form, it is bounded below by the minimum of
||Y - A||^2 + beta_bar ||sigma(A)||_(5)^2 over ALL classes x N matrices A (the trunk's features are
learnt, so nothing restricts A), beta_bar = beta_for_width(theta, 80, 5) (corrected Theorem 7).
The last layer has no bias: with a bias c the objective is ||Y - c 1^T - U G||^2 + ... and the bound
would be the minimum over c as well, not the bound for Y. The recorded objective uses the features
of the network in eval mode (BatchNorm with running statistics, the ResNet's), over the training
set, and is evaluated from their moments G G^T, Y G^T, ||Y||^2 (:func:`feature_moments`, accumulated
on the device batch by batch), so nothing of size N is held; the singular values of U G come from
the eigenvalues of U G G^T U^T (accurate to about 1e-8 of the largest, ample for the comparison).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._migration import warn_old_spelling
from .._progress import progress_delay
from .._results import ResultEquality
from .._validation import as_int, as_nonnegative_float, as_probability
from .layers import DropBlock1d
from .monitor import BoundMonitor, BoundRecord

__all__ = ["DeepExperimentResult", "deep_experiment", "load_dataset", "small_cnn", "resnet50_small"]

WIDTH = 80
BLOCK = 5


@dataclass(frozen=True, eq=False)
class DeepExperimentResult(ResultEquality):
    """Result of :func:`deep_experiment`.

    Attributes:
        epochs: 0..E (0 = before training).
        objective: the exact deterministic DropBlock objective over the training set after each
            epoch (E + 1 values; summed over samples, Lemma 1 with the learnt features G).
        train_loss: mean stochastic minibatch loss (per sample, summed over classes) of each epoch
            (E values).
        lower_bound: minimum of ||Y - A||^2 + beta_bar ||sigma(A)||_(r)^2 over all A (corrected
            Theorem 7).
        feature_lower_bound: the same minimum over the A = U G the final features G allow (A in
            G's row space), from G's moments (:func:`structdrop.global_min_from_moments`): a tighter
            bound for the trained network, objective[-1] >= feature_lower_bound >= lower_bound.
        singular_values: singular values of U G at the end (classes values, descending).
        theory_singular_values: singular values a* of the Theorem 7 minimiser (descending).
        theory_rank: rank of the Theorem 7 minimiser.
        theta: retain probability of DropBlock1d.  block_size: r.  width: d (80).
        beta_bar: (r/d)(1 - theta)/theta.  theta_bar: 1/(1 + beta_bar).
        trunk: "resnet50", "small_cnn", or "custom" (a module).
        dataset: "digits", "mnist", "cifar10" or "custom".
        n_train: training samples.  device: torch device used.  seconds: wall-clock time.

    Example:
        >>> import structdrop.torch as sdt
        >>> res = sdt.deep_experiment(theta=0.5, epochs=2, n_train=300)  # doctest: +SKIP
        >>> res.relative_gap, res.singular_value_error  # doctest: +SKIP
    """

    epochs: np.ndarray
    objective: np.ndarray
    train_loss: np.ndarray
    lower_bound: float
    feature_lower_bound: float
    singular_values: np.ndarray
    theory_singular_values: np.ndarray
    theory_rank: int
    theta: float
    block_size: int
    width: int
    beta_bar: float
    theta_bar: float
    trunk: str
    dataset: str
    n_train: int
    device: str
    seconds: float

    @property
    def relative_gap(self) -> float:
        """``objective[-1] / lower_bound - 1`` (>= 0), as :attr:`BoundRecord.relative_gap`."""
        return float(self.objective[-1] / self.lower_bound) - 1.0

    @property
    def gap(self) -> float:
        """Deprecated: the ratio ``objective[-1] / lower_bound`` (>= 1), which is
        ``relative_gap + 1`` (removed after 1.0; ``gap`` named a ratio here and an absolute
        difference or a ratio minus one elsewhere)."""
        warn_old_spelling("DeepExperimentResult.gap", "DeepExperimentResult.relative_gap + 1")
        return float(self.objective[-1] / self.lower_bound)

    @property
    def singular_value_error(self) -> float:
        """``max_i |sigma_i(U G) - a*_i| / a*_1``: how far the final spectrum is from theory's."""
        error = np.max(np.abs(self.singular_values - self.theory_singular_values))
        return float(error / self.theory_singular_values[0])


def small_cnn(in_channels: int) -> tuple[nn.Module, int]:
    """A small CNN trunk for small images (any size >= 4 x 4); returns (module, feature count)."""
    trunk = nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(64 * 16, 256),
        nn.ReLU(),
    )
    return trunk, 256


def resnet50_small(in_channels: int) -> tuple[nn.Module, int]:
    """torchvision's ResNet-50 (random init) adapted to small images: 3x3 stride-1 stem, no
    max-pool, ``in_channels`` input channels, the classifier removed (2048 features). Needs
    torchvision."""
    import torchvision  # lazy: torchvision is optional

    net = torchvision.models.resnet50(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net, 2048


def _output_width(trunk: nn.Module, sample: torch.Tensor) -> int:
    """Features per sample of ``trunk`` (one eval-mode forward pass of two images; the modes of
    its submodules are restored)."""
    modes = [(m, m.training) for m in trunk.modules()]
    trunk.eval()
    try:
        with torch.no_grad():
            out = trunk(sample)
    finally:
        for m, mode in modes:
            m.training = mode
    if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[0] != len(sample):
        raise ValueError(
            "trunk must map N x C x H x W images to (N, ...) features, got "
            f"{getattr(out, 'shape', type(out).__name__)}"
        )
    return int(out[0].numel())


def _torchvision_available() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or a torchvision built for another torch
        return False
    return True


def load_dataset(
    dataset: object = "digits", root: str | None = None, n_train: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Images (N x C x H x W, float32), integer labels and the class count.

    ``"digits"``: scikit-learn's bundled 8 x 8 handwritten digits (1797 images, no download).
    ``"mnist"``/``"cifar10"``: the training split from a local torchvision folder ``root``
    (``download=False``: a missing folder is an error, never a download). A pair
    ``(images, labels)`` (N x C x H x W and N integer labels 0..classes-1, arrays or tensors) uses
    your own data. ``n_train`` keeps a random subset (seeded) of that many samples.
    """
    if isinstance(dataset, (tuple, list)):
        if len(dataset) != 2:
            raise ValueError("dataset as data must be a pair (images, labels)")
        images = torch.as_tensor(np.asarray(dataset[0]), dtype=torch.float32)
        labels = torch.as_tensor(np.asarray(dataset[1]))
        if images.dim() != 4 or labels.dim() != 1 or len(labels) != len(images):
            raise ValueError(
                "dataset images must be N x C x H x W and labels N, "
                f"got {tuple(images.shape)}, {tuple(labels.shape)}"
            )
        if labels.dtype.is_floating_point or bool((labels < 0).any()):
            raise ValueError("dataset labels must be non-negative integers")
        if not bool(torch.isfinite(images).all()):
            raise ValueError("dataset images contain NaN or infinite values")
        labels = labels.to(torch.int64)
        return _subset(images, labels, int(labels.max()) + 1, n_train, seed)
    name = str(dataset).lower()
    if name == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError as exc:
            raise ImportError(
                "dataset='digits' needs scikit-learn (pip install scikit-learn)"
            ) from exc
        bunch = load_digits()
        images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
        labels = torch.as_tensor(bunch.target, dtype=torch.int64)
        classes = 10
    elif name in ("mnist", "cifar10"):
        if root is None:
            raise ValueError(f"dataset={dataset!r} needs root, a local torchvision dataset folder")
        try:
            import torchvision
        except ImportError as exc:
            raise ImportError(f"dataset={dataset!r} needs torchvision") from exc
        if name == "mnist":
            ds = torchvision.datasets.MNIST(root, train=True, download=False)
            images = ds.data.to(torch.float32).unsqueeze(1) / 255.0
            labels = torch.as_tensor(ds.targets, dtype=torch.int64)
        else:
            ds = torchvision.datasets.CIFAR10(root, train=True, download=False)
            images = (
                torch.as_tensor(np.asarray(ds.data), dtype=torch.float32).permute(0, 3, 1, 2)
                / 255.0
            )
            labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
        classes = 10
    else:
        raise ValueError(
            f"dataset must be 'digits', 'mnist', 'cifar10' or (images, labels), got {dataset!r}"
        )
    return _subset(images, labels, classes, n_train, seed)


def _subset(
    images: torch.Tensor, labels: torch.Tensor, classes: int, n_train: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    if n_train is not None:
        n_train = as_int("n_train", n_train, minimum=1)
        if n_train > len(labels):
            raise ValueError(f"n_train={n_train} exceeds the {len(labels)} samples")
        perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:n_train]
        images, labels = images[perm], labels[perm]
    return images, labels, classes


class _Net(nn.Module):
    def __init__(self, trunk: nn.Module, trunk_features: int, classes: int, theta: float) -> None:
        super().__init__()
        self.trunk = trunk
        self.reduce = nn.Linear(trunk_features, WIDTH)
        self.drop = DropBlock1d(BLOCK, theta=theta, overlapping=False)
        self.last = nn.Linear(WIDTH, classes, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.trunk(x).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.drop(self.features(x)))


def deep_experiment(
    theta: float = 0.5,
    *,
    dataset: object = "digits",
    root: str | None = None,
    n_train: int | None = None,
    trunk: str | nn.Module = "auto",
    epochs: int = 40,
    batch_size: int = 64,
    lr: float = 2e-3,
    schedule: str = "cosine",
    weight_decay: float = 0.0,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool | float = False,
) -> DeepExperimentResult:
    """Train trunk -> Linear(., 80) -> DropBlock1d(theta, 5) -> Linear(80, classes) and compare with
    Theorem 7.

    Section 5.2 / Figure 3 of the paper. After every epoch it records the exact deterministic
    objective over the training set (see the module docstring), and returns it with the corrected
    Theorem 7 lower bound for the one-hot targets, ``beta_bar = beta_for_width(theta, 80, 5)``, and
    the final singular values of ``U G`` next to the theory's ``a*``.

    Args:
        theta: retain probability of the DropBlock layer, in (0, 1].
        dataset: ``"digits"`` (scikit-learn's bundled images, default), ``"mnist"``, ``"cifar10"``,
            or your own ``(images, labels)`` (see :func:`load_dataset`).
        root: local torchvision folder for MNIST/CIFAR-10 (never downloaded).
        n_train: use a seeded random subset of this many training samples (default: all).
        trunk: ``"resnet50"`` (torchvision's ResNet-50 adapted to small images), ``"small_cnn"``,
            or ``"auto"``: ResNet-50 when torchvision imports and the device is CUDA, else the small
            CNN. ``"resnet50"`` without a working torchvision warns and uses the small CNN. Or any
            ``nn.Module`` taking the N x C x H x W images (its output is flattened; its width is
            read from one eval-mode forward pass): it is moved to ``device`` and trained in place
            (pass ``copy.deepcopy(trunk)`` to keep yours), with your initialisation.
        epochs, batch_size, lr, weight_decay: Adam training of all weights on the mean squared loss
            (per sample, summed over classes) of each shuffled minibatch (a last minibatch of one
            sample is skipped: BatchNorm cannot train on it).
        schedule: ``"cosine"`` (learning rate annealed to 0 over the epochs, default)
            or ``"constant"``.
        seed: seeds the subset, the initialisation, the shuffling and the masks.
        device: torch device (default: CUDA when available).
        progress: print one line per epoch; a number of seconds starts the lines only once the
            run has taken that long.

    Returns:
        :class:`DeepExperimentResult`. The objective and both bounds come from a
        :class:`BoundMonitor` on the training set (one eval-mode pass per epoch).

    Raises:
        ValueError: bad settings, an unknown trunk name or dataset.
        TypeError: a trunk that is neither a name nor an ``nn.Module``.

    Example:
        >>> import torch, structdrop.torch as sdt  # doctest: +SKIP
        >>> trunk = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 128))
        >>> res = sdt.deep_experiment(0.5, trunk=trunk, epochs=5)  # doctest: +SKIP
        >>> res.relative_gap, res.singular_values, res.theory_singular_values  # doctest: +SKIP
    """
    import structdrop

    theta = as_probability("theta", theta)
    epochs = as_int("epochs", epochs, minimum=0)
    batch_size = as_int("batch_size", batch_size, minimum=1)
    lr = as_nonnegative_float("lr", lr)
    weight_decay = as_nonnegative_float("weight_decay", weight_decay)
    seed = as_int("seed", seed, minimum=0)
    delay = progress_delay(progress)
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    if isinstance(trunk, str):
        if trunk not in ("auto", "resnet50", "small_cnn"):
            raise ValueError(
                f"trunk must be 'auto', 'resnet50', 'small_cnn' or an nn.Module, got {trunk!r}"
            )
    elif not isinstance(trunk, nn.Module):
        raise TypeError(
            f"trunk must be 'auto', 'resnet50', 'small_cnn' or an nn.Module, got {type(trunk)}"
        )
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    start = time.perf_counter()

    images, labels, classes = load_dataset(dataset, root, n_train, seed)
    N = len(labels)
    Y = torch.nn.functional.one_hot(labels, classes).to(torch.float64).T.contiguous()  # classes x N

    beta_bar = structdrop.beta_for_width(theta, WIDTH, BLOCK)
    theta_bar = 1.0 / (1.0 + beta_bar)

    custom = isinstance(trunk, nn.Module)
    use_resnet = not custom and (trunk == "resnet50" or (trunk == "auto" and device.type == "cuda"))
    if use_resnet and not _torchvision_available():
        if trunk == "resnet50":
            warnings.warn(
                "torchvision is not importable: using the small CNN trunk",
                RuntimeWarning,
                stacklevel=2,
            )
        use_resnet = False
    torch.manual_seed(seed)
    if isinstance(trunk, nn.Module):
        body, body_features = trunk.to(device), _output_width(trunk, images[:2].to(device))
    else:
        body, body_features = (resnet50_small if use_resnet else small_cnn)(images.shape[1])
    net = _Net(body, body_features, classes, theta).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    annealing = None
    if schedule == "cosine" and epochs > 0:
        annealing = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
    images_dev = images.to(device)
    targets_dev = Y.T.to(device=device, dtype=torch.float32)  # N x classes
    shuffle = torch.Generator().manual_seed(seed + 1)

    labels_dev = labels.to(device)
    # the training set in batches of 512 (views, no copies), passed once per evaluation
    batches = [(images_dev[i : i + 512], labels_dev[i : i + 512]) for i in range(0, N, 512)]
    monitor = BoundMonitor(net.features, net.last, net.drop, batches, num_classes=classes)

    def evaluate() -> BoundRecord:
        record = monitor.evaluate()
        monitor.history.append(record)
        return record

    objective = [evaluate().objective]
    losses = []
    for epoch in range(1, epochs + 1):
        order = torch.randperm(N, generator=shuffle).to(device)
        total = torch.zeros((), device=device)
        seen = 0
        for i in range(0, N, batch_size):
            batch = order[i : i + batch_size]
            if len(batch) == 1 and N > 1:
                continue  # BatchNorm cannot train on a single sample (ResNet's 1 x 1 maps)
            seen += len(batch)
            out = net(images_dev[batch])
            loss = (out - targets_dev[batch]).square().sum(1).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.detach() * len(batch)
        if annealing is not None:
            annealing.step()
        losses.append(float(total) / seen)
        objective.append(evaluate().objective)
        if delay is not None and time.perf_counter() - start >= delay:
            print(
                f"epoch {epoch:4d}  train loss {losses[-1]:.5f}  objective {objective[-1]:.4f}  "
                f"bound {monitor.history[-1].lower_bound:.4f}  "
                f"ratio {objective[-1] / monitor.history[-1].lower_bound:.4f}",
                flush=True,
            )
    final = monitor.history[-1]
    return DeepExperimentResult(
        epochs=np.arange(epochs + 1),
        objective=np.asarray(objective),
        train_loss=np.asarray(losses),
        lower_bound=final.lower_bound,
        feature_lower_bound=final.feature_lower_bound,
        singular_values=final.singular_values,
        theory_singular_values=final.theory_singular_values,
        theory_rank=final.theory_rank,
        theta=theta,
        block_size=BLOCK,
        width=WIDTH,
        beta_bar=float(beta_bar),
        theta_bar=float(theta_bar),
        trunk="custom" if custom else ("resnet50" if use_resnet else "small_cnn"),
        dataset=str(dataset).lower() if isinstance(dataset, str) else "custom",
        n_train=N,
        device=str(device),
        seconds=time.perf_counter() - start,
    )
