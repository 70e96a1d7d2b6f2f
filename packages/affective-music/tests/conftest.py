import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # make_librosa_reference (its signal and cases) for the tests
