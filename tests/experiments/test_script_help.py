"""`--help` of every experiment script lists its own flags and the shared ones (and
absl's --verbosity, which brings the libraries' logs back), none of TensorFlow's or
absl's others, and answers without importing TensorFlow."""

import re
import subprocess
import sys

import pytest

from helpers import REPO

SCRIPTS = sorted(p.stem for p in (REPO / "experiments").glob("*.py") if p.stem != "common")
DEFINE = re.compile(r"DEFINE_\w+\(\s*\"(\w+)\"")
# What each script shares from common.py.
SCHEDULE = {"preset", "epochs", "batch_size", "lr_decay_every", "train_subset", "test_subset",
            "jit_compile"}
SHARED = {
    "train": "all", "distill": "all", "ensemble": "all", "main": SCHEDULE, "reproduce": SCHEDULE,
    "export": set(),
}
# Flags TensorFlow and absl define, which --helpfull lists and --help must not.
NOT_OURS = ("logtostderr", "alsologtostderr", "log_dir", "only_check_args", "pdb_post_mortem",
            "run_with_profiling", "use_cprofile_for_profiling", "test_srcdir", "stderrthreshold")

HELP = """
import runpy, sys
sys.path.insert(0, "experiments")
sys.argv = ["experiments/{script}.py", "--help"]
try:
    runpy.run_path("experiments/{script}.py", run_name="__main__")
except SystemExit:
    pass
print("TENSORFLOW IMPORTED" if "tensorflow" in sys.modules else "NO TENSORFLOW")
"""


def defined_flags(script: str) -> set:
    return set(DEFINE.findall((REPO / "experiments" / f"{script}.py").read_text()))


def listed_flags(text: str) -> set:
    return set(re.findall(r"^\s+(?:-\w,)?--(?:\[no\])?(\w+)", text, flags=re.M))


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_lists_own_and_shared_flags_only_without_tensorflow(script):
    proc = subprocess.run([sys.executable, "-c", HELP.format(script=script)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    listed = listed_flags(proc.stdout)
    shared = defined_flags("common") if SHARED[script] == "all" else SHARED[script]
    expected = defined_flags(script) | shared | {"verbosity"}
    assert listed == expected, (sorted(listed - expected), sorted(expected - listed))
    assert not any(name in listed for name in NOT_OURS)
    assert proc.stdout.rstrip().endswith("NO TENSORFLOW")
    if "preset" in listed and script != "main":   # main.py's job has its own: demo
        default = re.search(r"--preset: .*?\(default: '(\w+)'\)", proc.stdout, flags=re.S)
        assert default.group(1) == "paper"        # kdkeras.training.config.DEFAULT_PRESET


def test_preset_names_and_the_default_match_the_library():
    sys.path.insert(0, str(REPO / "experiments"))
    import common
    from kdkeras.reproduce import Settings
    from kdkeras.training.config import DEFAULT_PRESET, PRESET_NAMES, TrainConfig, resolve_config

    assert common.PRESETS == PRESET_NAMES
    assert common.DEFAULT_PRESET == DEFAULT_PRESET == "paper"
    # One default everywhere: a config left at its defaults is the default preset's.
    assert TrainConfig() == resolve_config(TrainConfig) == resolve_config(TrainConfig, "paper")
    assert Settings() == Settings.for_preset(DEFAULT_PRESET, dataset="synthetic")
