"""structdrop: the exact mathematics of structured dropout."""

# --- masked-SGD training (issue 4: cpp/sgd.*, python/structdrop/training.py) ---
from .training import TrainingDiverged, TrainResult, train, train_many  # noqa: E402

__all__ = [*globals().get("__all__", []), "TrainResult", "TrainingDiverged", "train", "train_many"]
