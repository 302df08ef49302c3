"""Which Chinese notebooks `make test` executes (nbval).

A Chinese twin's code cells are the English notebook's, byte for byte (`python -m course_utils.nbtools check`
fails otherwise), so executing every twin would only run the same code a second time and double CI's notebook time.
CI executes the twins listed here, enough to prove that the code does not depend on the notebook's folder (they run
with the working directory notebooks/zh). `COURSE_ZH_EXECUTE=all` executes every Chinese notebook.
"""

import os
from pathlib import Path

EXECUTE = {"00_welcome_and_setup.ipynb", "07_lmdeploy_inference.ipynb"}

HERE = Path(__file__).parent
if os.environ.get("COURSE_ZH_EXECUTE") == "all":
    collect_ignore = []
else:
    collect_ignore = [
        str(p) for p in sorted(HERE.rglob("*.ipynb")) if p.relative_to(HERE).as_posix() not in EXECUTE
    ]
