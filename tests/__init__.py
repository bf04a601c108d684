# The suites are packages (tests.torch, tests.cli, ...), so pytest imports them under those names
# and puts the checkout's root on sys.path, never tests/ itself: there the folder tests/torch
# would stand in for PyTorch where it is not installed, and importorskip("torch") would pass.
