"""Executes the table notebooks on the real results and stores their outputs.

    python scripts/execute_notebooks.py                  # every notebook but 08_ensemble
    python scripts/execute_notebooks.py notebooks/04_p3_ensemble.ipynb

Run from the repository root after a `results/` table changes, so that the stored
outputs (what a code host shows) read the files the README quotes. The kernel reads
`results/` as `kdkeras.reporting.tables_io` finds it (`KDKERAS_RESULTS_DIR` is
cleared). TensorFlow's start-up log lines on stderr are dropped from the stored
outputs: they are noise, and `tests/experiments/test_reproduce_all_smoke.py` refuses
them.
"""

import os
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

# Kept without outputs: its test executes it on smoke results (tests/experiments).
ENSEMBLE_NOTEBOOK = "08_ensemble"
TF_LOG = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWE]0000 "
                    r"|To enable the following instructions|This TensorFlow binary)")


def is_tf_log(output) -> bool:
    """A stderr stream output holding TensorFlow/absl start-up log lines only."""
    if output.get("output_type") != "stream" or output.get("name") != "stderr":
        return False
    lines = [line for line in "".join(output["text"]).splitlines() if line.strip()]
    return bool(lines) and all(TF_LOG.match(line) for line in lines)


def execute(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=600,
                   resources={"metadata": {"path": "."}}).execute()
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if not is_tf_log(o)]
    nbformat.write(nb, path)
    print(f"{path}: executed and stored", flush=True)


def main(paths) -> None:
    os.environ.pop("KDKERAS_RESULTS_DIR", None)   # the kernel inherits the environment
    # The table notebooks: every one but the ensemble study's, the set that
    # tests/experiments/test_reproduce_all_smoke.py checks for stored outputs.
    table_notebooks = sorted(p for p in Path("notebooks").glob("*.ipynb")
                             if p.stem != ENSEMBLE_NOTEBOOK)
    for path in [Path(p) for p in paths] or table_notebooks:
        execute(path)


if __name__ == "__main__":
    main(sys.argv[1:])
