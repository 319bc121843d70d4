"""kdkeras.reproduce.settings: preset defaults, and run directories named by what a run is.

`scale_tag` and `options_slug` are an on-disk format: a re-run finds finished
runs only if they name them as before, so the names are pinned here.
"""

import pytest

from kdkeras.reproduce import Settings, tables
from kdkeras.training.runs import options_slug


def test_run_directories_are_named_by_what_they_are():
    assert options_slug("p1", (("cross_depth", (2,)),), 1) == "p1-cross_depth_only2-k1"
    assert options_slug("p1_p2", (("beta_mode", "off"), ("cross_depth", 3)), 3) == \
        "p1_p2-beta_mode_off-cross_depth3-k3"
    s = Settings(preset="fast", dataset="cifar10_jpeg",
                 overrides=(("epochs", 4), ("train_subset", 5000)))
    assert s.scale_tag("cifar") == "cifar10_jpeg-fast-e4-n5000"
    assert s.family_dataset("imagenet64") == ("imagenet64", None)


def test_the_reduced_scale_script_finds_its_runs():
    # scripts/reproduce_cifar10_resnet.sh: --preset=fast --data_dir=<image folder>
    # --train_subset=10000 --epochs=12 --lr_decay_every=5 --teachers_dir=...
    s = Settings.for_preset("fast", dataset="image_folder", seeds=3,
                            overrides={"epochs": 12, "batch_size": None, "lr_decay_every": 5,
                                       "train_subset": 10000, "test_subset": None,
                                       "jit_compile": None},
                            teachers_dir="results/cifar10-jpeg/teachers")
    assert s.scale_tag("cifar") == "image_folder-fast-e12-d5-n10000"
    assert s.seeds == (0, 1, 2) and not s.reuse_one_teacher and s.latency_repeats == 30
    assert s.overrides == (("epochs", 12), ("lr_decay_every", 5), ("train_subset", 10000))
    slugs = sorted({options_slug(r.method, r.options, r.num_teachers)
                    for n in (2, 5, 8, 11, 14) for r in tables.get(n).rows
                    if r.kind == tables.DISTILL})
    # The ablations are FSP (two-stage: "init0.125") plus one factor each, and the
    # combinations walk from there to "ours" one named step at a time (tables.py).
    assert slugs == sorted([
        "fsp-init0.125-k1", "fsp-init0.125-k2", "fsp-init0.125-k3", "fsp_joint-k1",
        "fsp-init0.125-cross_depth_only2-k1", "fsp-init0.125-cross_depth_only3-k1",
        "fsp-init0.125-cross_depth3-k1", "fsp-init0.125-cross_depth3-k3",
        "fsp-init0.125-use_klTrue-k1", "fsp-init0.125-use_klTrue-k3",
        "fsp-init0.125-cross_depth3-use_klTrue-k1", "fsp-init0.125-cross_depth3-use_klTrue-k3",
        "fsp_joint-cross_depth3-use_klTrue-k3", "ours-beta_mode_off-cross_depth3-k3",
        "ours-cross_depth3-k3", "hinton-k1",
        "fsp-init0.125-adapter_side_student-always_adaptTrue-k1",
        "fsp-init0.125-adapter_side_student-always_adaptTrue-k3",
        "ours-adapter_side_student-always_adaptTrue-cross_depth3-k3"])


def test_smoke_defaults_test_plumbing_not_the_method():
    s = Settings.for_preset("smoke", dataset="synthetic")
    assert (s.seeds, s.reuse_one_teacher, s.latency_repeats) == ((0,), True, 3)
    assert s.scale_tag("imagenet64") == "synthetic-smoke-one_teacher"
    explicit = Settings.for_preset("smoke", dataset="synthetic", seeds=2, reuse_one_teacher=False,
                                   latency_repeats=7)
    assert (explicit.seeds, explicit.reuse_one_teacher, explicit.latency_repeats) == (
        (0, 1), False, 7)


@pytest.mark.parametrize("kwargs, message", [
    (dict(seeds=0), "--seeds must be >= 1"),
    (dict(latency_repeats=0), r"--latency_repeats must be >= 1. Received: --latency_repeats=0"),
    (dict(overrides={"learning_rate": 0.1}), "Unknown override"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Settings.for_preset("fast", dataset="cifar100", **kwargs)
