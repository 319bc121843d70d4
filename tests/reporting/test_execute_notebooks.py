"""scripts/execute_notebooks.py keeps a notebook's outputs and drops only TensorFlow's
start-up log lines on stderr."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "execute_notebooks.py"
spec = importlib.util.spec_from_file_location("execute_notebooks", SCRIPT)
execute_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(execute_notebooks)


def _stream(name, *lines):
    return {"output_type": "stream", "name": name, "text": [line + "\n" for line in lines]}


def test_only_tensorflow_start_up_lines_on_stderr_are_dropped():
    is_tf_log = execute_notebooks.is_tf_log
    tf_lines = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
                "I0000 00:00:1796280403.905400     788 port.cc:153] oneDNN custom operations are on.",
                "To enable the following instructions: AVX2 AVX512F, in other operations, rebuild "
                "TensorFlow with the appropriate compiler flags.")
    assert is_tf_log(_stream("stderr", *tf_lines))
    # Anything else on stderr is kept: a real warning, or a log line beside one.
    assert not is_tf_log(_stream("stderr", "UserWarning: Table 14 has no result yet"))
    assert not is_tf_log(_stream("stderr", tf_lines[1], "Traceback (most recent call last):"))
    assert not is_tf_log(_stream("stdout", *tf_lines))          # printed by the notebook
    assert not is_tf_log(_stream("stderr", ""))
    assert not is_tf_log({"output_type": "display_data", "data": {"text/plain": tf_lines[1]}})
