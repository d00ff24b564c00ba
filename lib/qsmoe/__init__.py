"""qsmoe: the library behind qs-book (MoE versus quality-matched dense decode, from first principles)."""
from pathlib import Path

__version__ = "0.1.0"

#: Repository root (the folder holding data/, chapters/, lib/).
REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"
