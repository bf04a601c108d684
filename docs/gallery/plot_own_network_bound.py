"""
Your own network against the closed-form minimum
================================================

A network trained with DropBlock before its last layer minimises, in expectation over the masks,
a deterministic objective whose global minimum is known in closed form (Section 5.2 and Figure 3
of the paper). :class:`structdrop.torch.BoundMonitor` measures both on any network while it
trains: give it the module that computes the penultimate features, the dropout layer, the last
``nn.Linear`` and the training data, and call ``monitor.step()`` after each optimiser step.

Here the network is a small CNN on scikit-learn's 8 x 8 digits (1797 images, no download),
written as a user would: ``features`` (two convolutions and two linear layers, 80 features) ->
``DropBlock1d(5, p=0.5, overlapping=False)`` -> ``nn.Linear(80, 10)`` with a bias, trained by Adam
on the squared loss of one-hot labels. Every epoch the monitor records

* the **exact objective**: the expectation over the masks of the training loss summed over the
  samples (Lemma 1 from the features' moments, one eval-mode pass over the data),
* the **lower bound**: the corrected Theorem 7 minimum over *all* outputs A, with
  ``beta_bar = (5 / 80) (1 - theta) / theta``; no network of this width, whatever its trunk, can go
  below it (the bias is free too: the targets are centred),
* the **feature bound**: the same minimum over the outputs the current features allow.

The curves approach the bound from above, and the right panel sets the singular values of the
trained product ``U G`` next to those of the minimiser: the closed form predicts both the value
and the shape the trained network converges to.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits

import structdrop.torch as sdt

torch.manual_seed(0)
torch.set_num_threads(1)  # small layers: one thread is fastest (no thread hand-offs)
digits = load_digits()
images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
labels = torch.as_tensor(digits.target)
data = torch.utils.data.TensorDataset(images, labels)
train = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True)
whole = torch.utils.data.DataLoader(data, batch_size=512)  # for the monitor: all the samples

features = torch.nn.Sequential(
    torch.nn.Conv2d(1, 16, 3, padding=1),
    torch.nn.ReLU(),
    torch.nn.Conv2d(16, 32, 3, padding=1),
    torch.nn.ReLU(),
    torch.nn.AvgPool2d(2),
    torch.nn.Flatten(),
    torch.nn.Linear(32 * 16, 128),
    torch.nn.ReLU(),
    torch.nn.Linear(128, 80),
)
drop = sdt.DropBlock1d(5, p=0.5, overlapping=False)
head = torch.nn.Linear(80, 10)
net = torch.nn.Sequential(features, drop, head)

epochs = 80
steps_per_epoch = len(train)
monitor = sdt.BoundMonitor(
    features, head, drop, whole, num_classes=10, record_every=steps_per_epoch
)
optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
monitor.record()  # before training
for _ in range(epochs):
    for x, y in train:
        loss = (net(x) - torch.nn.functional.one_hot(y, 10)).square().sum(1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        monitor.step()
    schedule.step()

# %%
# The final record: the gap to the bound and the spectrum against the theory.
final = monitor.history[-1]
print(
    f"objective {final.objective:.2f}, feature bound {final.feature_lower_bound:.2f}, "
    f"lower bound {final.lower_bound:.2f}: gap {100 * final.relative_gap:.2f} %"
)
print("singular values of U G:", np.round(final.singular_values, 2))
print("theory a*:             ", np.round(final.theory_singular_values, 2))

# %%
history = monitor.history_arrays()
epoch = history["step"] / steps_per_epoch
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
left.semilogy(epoch, history["objective"], label="exact objective (expected loss)")
left.semilogy(epoch, history["feature_lower_bound"], label="minimum over the features' row space")
left.axhline(final.lower_bound, color="k", ls="--", lw=1, label="closed-form minimum (any network)")
left.set_xlabel("epoch")
left.set_ylabel("summed squared loss")
left.set_title("DropBlock(0.5, 5) before the last layer, width 80")
left.legend(fontsize=8)
index = np.arange(1, 11)
right.plot(index, final.singular_values, "o", label="trained network, sigma(U G)")
right.plot(index, final.theory_singular_values, "x", ms=9, label="minimiser, a*")
right.set_xlabel("index")
right.set_ylabel("singular value")
right.set_title(f"after {epochs} epochs: gap {100 * final.relative_gap:.1f} %")
right.legend(fontsize=8)
plt.show()
