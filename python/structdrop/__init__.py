"""structdrop: the exact mathematics of structured dropout."""
