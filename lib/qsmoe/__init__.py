"""qsmoe: the library behind qs-book (MoE versus quality-matched dense decode, from first principles)."""
from pathlib import Path

__version__ = "0.1.0"

#: Repository root (the folder holding data/, chapters/, lib/).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The data files: the repository's data/, or, installed from the book's wheel, the copy the
#: wheel carries inside the package (qsmoe/data/, added by qsmoe.book.source_archive).
DATA_DIR = REPO_ROOT / "data" if (REPO_ROOT / "data").is_dir() else Path(__file__).resolve().parent / "data"
