"""The model-family tests share `model_checks` (pins, forward pass, save/load round trip)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
