"""The P3 ensemble study of issue 16: every variant at K=1 and K=3 over seeds, paired by seed.

Each variant is a set of `DistillConfig` overrides of the paper's full method
(`ours`); its K=1 twin uses teacher 0 alone with the same overrides (for the
variants those overrides do nothing to with one teacher, `SAME_AS_OURS_AT_K1`,
that run is `ours`' own K=1 run, run once), so the paired difference K=3 − K=1
on one seed (same initial student, same data order) isolates what the other
K−1 teachers add under that variant:

    python experiments/ensemble.py --teachers=T0,T1,T2 --teacher_set=independent \
        --variants=ours,aligned --seeds=0,1,2 --root=runs/ensemble/independent \
        --out=results/cifar10-jpeg/ensemble/variants-independent.json ...

Every run resumes (its own run directory under `root/<variant>/K<k>-s<seed>`),
so a stopped study continues where it stopped. `summarise` reads the finished
runs' results.json files, so it can be re-run on any set of runs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from kdkeras.reporting.aggregate import mean_std, paired_difference

# name → DistillConfig overrides of `ours` (docs/ensemble.md describes each).
VARIANTS: dict[str, tuple] = {
    "ours": (),                                                      # the paper's P3
    "adapters": (("adapter_side", "student"), ("always_adapt", True)),
    "aligned": (("teacher_alignment", "procrustes"),),
    "confidence": (("teacher_weighting", "confidence"),),
    "closest": (("teacher_weighting", "closest"),),
    "kl_to_mean": (("ensemble_kl", "kl_to_mean"),),
}

# Variants whose options do nothing with one teacher: their K=1 twin is `ours`' K=1 run
# (teacher 0 aligned onto itself is I; one teacher's weight is 1, closest or by
# confidence; the mean of one teacher is that teacher, and `kl_to_mean_teacher` then computes
# `mean_of_kls`). tests/experiments/test_ensemble_study.py checks the weights are bit-identical.
SAME_AS_OURS_AT_K1 = ("aligned", "confidence", "closest", "kl_to_mean")


def run_variant(variant: str, k: int) -> str:
    """Whose run `variant` at K=k is: `ours` for the K=1 twin of `SAME_AS_OURS_AT_K1`."""
    return "ours" if k == 1 and variant in SAME_AS_OURS_AT_K1 else variant


def run_dir(root, variant: str, k: int, seed: int) -> Path:
    """`root/<run_variant>/K<k>-s<seed>`."""
    return Path(root) / run_variant(variant, k) / f"K{k}-s{seed}"


def run_study(base, teachers: Sequence[str], *, variants: Sequence[str], seeds: Sequence[int],
              ks: Sequence[int] = (1, 3), root, splits=None) -> dict:
    """Runs (`kdkeras.training.runs.run`) every (variant, K, seed) run; returns `summarise` of them.

    Args:
      base: a `DistillRunConfig` holding the scale and recipe (its method,
        teachers, seed, workdir and distill_options are set here).
      teachers: checkpoint paths; K uses the first K.
      splits: the data (tf.data-fed splits or an `ArraySplits`); None loads `base.dataset`.
    """
    from kdkeras.training.runs import run

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or max(ks) > len(teachers):
        raise ValueError(f"Variants must be among {sorted(VARIANTS)} and K at most the "
                         f"{len(teachers)} teachers given. Received: variants={list(variants)}, "
                         f"ks={list(ks)}.")
    for variant in variants:
        for k in ks:
            for seed in seeds:
                config = dataclasses.replace(
                    base, method="ours", teachers=tuple(str(t) for t in teachers[:k]),
                    train_teachers=0, seed=seed,
                    distill_options=VARIANTS[run_variant(variant, k)],
                    workdir=str(run_dir(root, variant, k, seed)), resume=True, overwrite=False)
                print(f"ensemble study: {variant} K={k} seed {seed} -> {config.workdir}",
                      flush=True)
                run(config, splits)
    return summarise(root, variants, seeds, ks)


def summarise(root, variants: Sequence[str], seeds: Sequence[int],
              ks: Sequence[int] = (1, 3)) -> dict:
    """Top-1 per (variant, K) over seeds, each variant's paired K_max − K_min difference and,
    at K_max, each variant minus every variant listed before it (`K<max>_between_variants`)."""
    out = {"variants": {}, "scale": None, "ks": list(ks)}
    lo, hi = min(ks), max(ks)
    commits = set()
    for variant in variants:
        by_k = {}
        for k in ks:
            top1 = {}
            for seed in seeds:
                path = run_dir(root, variant, k, seed) / "results.json"
                if not path.exists():
                    continue
                results = json.loads(path.read_text())
                top1[seed] = 100.0 * results["test_accuracy"]
                commits.add(results["provenance"].get("git_commit"))
                if out["scale"] is None:
                    prov = results["provenance"]
                    out["scale"] = {key: prov.get(key) for key in (
                        "dataset", "num_train", "num_test", "epochs", "preset")}
                    out["scale"]["device"] = prov["machine"].get("device")
                    out["scale"]["git_commit"] = prov.get("git_commit")
                    out["scale"].update({key: results["config"].get(key) for key in (
                        "lr_decay_every", "batch_size", "train_subset")})
            by_k[f"K{k}"] = {**mean_std(list(top1.values())), "by_seed": top1}
        out["variants"][variant] = {
            "options": [list(o) for o in VARIANTS.get(variant, ())],
            "k1_twin": run_variant(variant, 1),
            **by_k,
            f"K{hi}_minus_K{lo}": paired_difference(by_k[f"K{hi}"]["by_seed"],
                                                    by_k[f"K{lo}"]["by_seed"])
            or {"mean": None, "std": None, "n": 0, "seeds": [], "ci95": None},   # not yet run
        }
    # At the largest K, every variant against each one listed before it, paired by seed
    # (e.g. "aligned − ours"): the comparisons the lab notebook reads off, kept here so
    # that each quoted gap has its file.
    done = [v for v in variants if out["variants"][v][f"K{hi}"]["by_seed"]]
    out[f"K{hi}_between_variants"] = {
        f"{a} − {b}": paired_difference(out["variants"][a][f"K{hi}"]["by_seed"],
                                        out["variants"][b][f"K{hi}"]["by_seed"])
        for i, a in enumerate(done) for b in done[:i]}
    if out["scale"] is not None:   # the code each run ran at (a study may span commits)
        out["scale"]["run_commits"] = sorted(commits - {None})
    return out
