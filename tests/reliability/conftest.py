"""The fault tests share `reliability_support` (tiny runs) with the driver they run in fresh processes."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
