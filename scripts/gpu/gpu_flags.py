"""What the GPU scripts (run_experiment.py, run_table.py) share: the data flags and table rows.

Nothing here imports TensorFlow: the GPU machine has JAX only.
"""

from absl import app, flags


def define_data_flags(default_root: str) -> None:
    """--data, --name, --cache and --root: the images in, the runs out."""
    flags.DEFINE_string("data", None, "Image folder or tar of <split>/<class>/<image>.",
                        required=True)
    flags.DEFINE_string("name", "cifar10_jpeg", "Dataset name recorded in the results.")
    flags.DEFINE_string("cache", None, "An .npz to keep the decoded images in (reused if present).")
    flags.DEFINE_string("root", default_root, "Where the run directories and summary.json go.")


def table_runs(numbers, student: str, slugs=None):
    """The unique student runs of reproduce tables `numbers` whose student is `student`.

    A slug in `slugs` (--rows) that is not one of them is a usage error listing the valid ones.
    """
    from kdkeras.reproduce.settings import student_runs

    try:
        return student_runs(numbers, student, slugs)
    except ValueError as err:
        raise app.UsageError(f"--rows {err}") from None
