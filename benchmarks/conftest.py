import sys
from pathlib import Path

# The suites import their shared helpers as `common`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
