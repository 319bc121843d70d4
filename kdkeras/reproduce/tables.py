"""The paper's Tables 1–20 as data: for each table, the runs it needs.

Chou, Chiu & Liao (2021), "Cross-layer knowledge distillation with KL divergence
and offline ensemble", report four teacher → student pairs:

  * VGG-11 → VGG-6 and ResNet-32 → ResNet-8 on CIFAR-100,
  * MobileNet-16 → MobileNet-9 on ImageNet 64×64,
  * ResNet-50 → ResNet-10 on CIFAR-100, directly with 1×1 adapters and in two
    stages through a ResNet-18 assistant.

Their tables are images, so only their *structure* is encoded here (which runs
each table compares); the figures the paper states in its text are in
`results/paper_reported.json`. Where the structure is our reading of the text,
`Table.notes` says so. A row is one `Run`; rows that are the same run (the
student alone of a pair appears in most tables) are trained once and shared,
because `kdkeras.reproduce.engine` names a run's directory by what it is, not by
the table it appears in.

Conventions:
  * `num_teachers` is P3's K. Teacher k is the teacher architecture trained
    with seed k, shared by every run, table and student seed.
  * `options` are `DistillConfig` overrides. `cross_depth` follows
    `kdkeras.losses.cross_layer_pairs`: an int d is the union of distances 1..d
    (the paper's "P1 (cross three layers)" is 3), a tuple is exactly those
    distances (the P1 ablation's single "cross-two" is (2,)).
  * A row whose `cross_depth` needs more taps than the models expose is
    reported as not applicable (tap counts are read from the models).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

# What a row of a table is.
TRAIN = "train"        # a model trained alone (teacher, assistant or student baseline)
DISTILL = "distill"    # a student distilled from K teachers
STAGES = "stages"      # multi-stage KD along a chain (each student teaches the next stage)


@dataclasses.dataclass(frozen=True)
class Pair:
    """A teacher → student pair of the paper and the data it was reported on."""

    key: str
    teacher: str
    student: str
    family: str            # "cifar" (CIFAR-100 in the paper) or "imagenet64"
    p1_depth: int          # the paper's full P1: cross-three, or cross-four for MobileNet
    title: str
    assistant: Optional[str] = None   # the two-stage middle model (ResNet-18)


PAIRS: dict[str, Pair] = {
    "vgg": Pair("vgg", "vgg11", "vgg6", "cifar", 3, "VGG-11 → VGG-6"),
    "resnet": Pair("resnet", "resnet32", "resnet8", "cifar", 3, "ResNet-32 → ResNet-8"),
    "mobilenet": Pair("mobilenet", "mobilenet16", "mobilenet9", "imagenet64", 4,
                      "MobileNet-16 → MobileNet-9"),
    "resnet50": Pair("resnet50", "resnet50", "resnet10", "cifar", 3,
                     "ResNet-50 → (ResNet-18 →) ResNet-10", assistant="resnet18"),
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One row of a table: a model trained alone, a distillation, or a stage chain.

    Attributes:
      label: the row's name as the table shows it.
      kind: `TRAIN`, `DISTILL` or `STAGES`.
      model: the model trained alone, or the (final) student.
      teacher: the teachers' architecture (`DISTILL`).
      method: a name of `kdkeras.distill.METHODS`.
      options: `DistillConfig` overrides, as sorted (name, value) pairs.
      num_teachers: P3's K (the first stage's K for `STAGES`).
      chain: `STAGES`: teacher, assistant(s), student.
      stage: `STAGES`: the stage whose student this row reports (1-based;
        None is the last stage).
      in_paper: False for rows kdkeras adds to a table (say so when shown).
    """

    label: str
    kind: str
    model: str
    teacher: Optional[str] = None
    method: str = "student"
    options: tuple = ()
    num_teachers: int = 0
    chain: tuple = ()
    stage: Optional[int] = None
    in_paper: bool = True

    @property
    def cross_depth(self):
        """The row's P1 cross depth, or None if it has no cross-layer loss."""
        from kdkeras.distill import method_config

        cfg = method_config(self.method, **dict(self.options))
        return cfg.cross_depth if cfg.feature_loss in ("gram", "fsp") else None


@dataclasses.dataclass(frozen=True)
class Table:
    """One table of the paper: its rows and how its headline gap is read.

    Attributes:
      number: 1..20.
      group: "main", "p1", "p2", "p3", "combinations", "comparison", "two_stage".
      pair: a key of `PAIRS`.
      title: what the table shows.
      rows: the `Run`s, in the order the table lists them.
      baseline: label of the row every gap is measured from.
      headline: label of the row whose gain over `baseline` the paper quotes.
      cost: whether the table has params / FLOPs / latency columns.
      notes: where the structure is our reading of the paper.
    """

    number: int
    group: str
    pair: str
    title: str
    rows: tuple
    baseline: str
    headline: str
    cost: bool = False
    notes: str = ""

    @property
    def family(self) -> str:
        return PAIRS[self.pair].family

    def row(self, label: str) -> Run:
        for r in self.rows:
            if r.label == label:
                return r
        raise KeyError(f"Table {self.number} has no row {label!r}.")


GROUPS = {
    "main": "Main results (P1 + P2 + P3 with β against the student alone)",
    "p1": "P1: cross-layer Gram matrices, cross-one to cross-four",
    "p2": "P2: KL divergence, against Hinton KD and FSP",
    "p3": "P3: offline ensemble of one, two and three teachers",
    "combinations": "Combinations of P1, P2 and P3",
    "comparison": "Comparison with Hinton KD, FSP, SSKD_SVD and RKD, with cost",
    "two_stage": "ResNet-50 → ResNet-10: 1×1 adapters and two-stage KD",
}
_MAIN_PAIRS = ("vgg", "resnet", "mobilenet")


# --- row builders -------------------------------------------------------------
def _opts(**options) -> tuple:
    return tuple(sorted(options.items()))


def teacher_row(p: Pair) -> Run:
    return Run(f"Teacher ({p.teacher})", TRAIN, p.teacher)


def student_row(p: Pair) -> Run:
    return Run(f"Student alone ({p.student})", TRAIN, p.student)


def kd_row(p: Pair, label: str, method: str, k: int = 1, in_paper: bool = True,
           **options) -> Run:
    """A distillation of the pair's student; gram-based rows get the pair's P1 depth."""
    if method in ("p1", "p1_p2", "ours") and "cross_depth" not in options:
        options["cross_depth"] = p.p1_depth
    return Run(label, DISTILL, p.student, teacher=p.teacher, method=method,
               options=_opts(**options), num_teachers=k, in_paper=in_paper)


def ours_row(p: Pair) -> Run:
    return kd_row(p, "Ours (P1+P2+P3, β)", "ours", k=3)


_FSP, _OURS = "FSP", "Ours (P1+P2+P3, β)"
_ORDINAL = {1: "one", 2: "two", 3: "three", 4: "four"}


def _main(n: int, p: Pair) -> Table:
    return Table(n, "main", p.key, f"Main result, {p.title}",
                 (teacher_row(p), student_row(p), ours_row(p)),
                 baseline=student_row(p).label, headline=_OURS, cost=True,
                 notes="Rows: the teacher, the student alone and the full method with K=3 "
                       "teachers. The gain is Ours minus the student alone.")


def _p1(n: int, p: Pair) -> Table:
    rows = [student_row(p), kd_row(p, _FSP, "fsp")]
    rows += [kd_row(p, f"P1 cross-{_ORDINAL[d]}", "p1", cross_depth=(d,))
             for d in range(1, p.p1_depth + 1)]
    union = f"P1 (cross-one..{_ORDINAL[p.p1_depth]})"
    rows.append(kd_row(p, union, "p1", cross_depth=p.p1_depth))
    return Table(n, "p1", p.key, f"P1 ablation, {p.title}", tuple(rows),
                 baseline=_FSP, headline=union,
                 notes="One teacher, no KL. Cross-d rows use the Gram pairs exactly d taps "
                       "apart; the last row is the union the paper calls P1. The paper's "
                       "P1 gain over FSP is read as that union minus FSP.")


def _p2(n: int, p: Pair) -> Table:
    rows = (student_row(p), kd_row(p, "Hinton KD", "hinton"), kd_row(p, _FSP, "fsp"),
            kd_row(p, "FSP + KL (P2)", "fsp_kl"))
    return Table(n, "p2", p.key, f"P2 ablation, {p.title}", rows, baseline=_FSP,
                 headline="FSP + KL (P2)",
                 notes="One teacher. The paper's P2 gain over FSP is read as FSP+KL minus FSP.")


# Each teacher's Grams matched through its own 1×1 adapter on the student's taps:
# teachers trained from different seeds do not share a channel basis, so one student
# Gram cannot match all of them, but K projections of it can (kdkeras addition).
_OWN_ADAPTERS = dict(always_adapt=True, adapter_side="student")


def _p3(n: int, p: Pair) -> Table:
    rows = (student_row(p), kd_row(p, _FSP, "fsp"),
            kd_row(p, "FSP, 2 teachers (P3)", "fsp", k=2),
            kd_row(p, "FSP, 3 teachers (P3)", "fsp", k=3),
            kd_row(p, "FSP, student adapter", "fsp", in_paper=False, **_OWN_ADAPTERS),
            kd_row(p, "FSP, 3 teachers, a student adapter per teacher", "fsp", k=3,
                   in_paper=False, **_OWN_ADAPTERS))
    return Table(n, "p3", p.key, f"P3 ablation, {p.title}", rows, baseline=_FSP,
                 headline="FSP, 3 teachers (P3)",
                 notes="P3 is applied to the FSP baseline (the paper quotes P3's gain over "
                       "FSP): K = 1, 2, 3 teachers of different seeds. The adapter rows are a "
                       "kdkeras addition: each teacher's Grams are matched through its own "
                       "trained 1×1 conv on the student's taps (always_adapt, "
                       "adapter_side='student'), with its one-teacher twin.")


def _combinations(n: int, p: Pair) -> Table:
    rows = (student_row(p), kd_row(p, _FSP, "fsp"),
            kd_row(p, "P1+P2", "p1_p2"),
            kd_row(p, "P1+P3", "p1", k=3),
            kd_row(p, "P2+P3", "fsp_kl", k=3),
            ours_row(p),
            kd_row(p, "P1+P2+P3, β off", "p1_p2", k=3, in_paper=False, beta_mode="off"),
            kd_row(p, "Ours, a student adapter per teacher", "ours", k=3, in_paper=False,
                   **_OWN_ADAPTERS))
    return Table(n, "combinations", p.key, f"Combinations, {p.title}", rows, baseline=_FSP,
                 headline=_OURS,
                 notes="P2 without P1 is FSP+KL; P3 without P1 is FSP with K teachers. The "
                       "β-off row is a kdkeras addition that isolates the β step; so is the "
                       "adapter row, where each teacher's Grams are matched through its own "
                       "trained 1×1 conv on the student's taps.")


def _comparison(n: int, p: Pair) -> Table:
    rows = (teacher_row(p), student_row(p), kd_row(p, "Hinton KD", "hinton"),
            kd_row(p, _FSP, "fsp"), kd_row(p, "SSKD_SVD", "sskd_svd"),
            kd_row(p, "RKD", "rkd"), ours_row(p))
    return Table(n, "comparison", p.key, f"Comparison with other KD methods, {p.title}",
                 rows, baseline=student_row(p).label, headline=_OURS, cost=True,
                 notes="Baselines use one teacher, ours K=3; cost columns are the teacher's "
                       "and the student's (params, FLOPs, batch-1 latency).")


def _resnet50_adapters(n: int) -> Table:
    p = PAIRS["resnet50"]
    rows = (teacher_row(p), student_row(p), kd_row(p, "Hinton KD", "hinton"),
            kd_row(p, "FSP (+1×1 adapters)", "fsp"),
            kd_row(p, "Ours (P1+P2+P3, β, +1×1 adapters)", "ours", k=3))
    return Table(n, "two_stage", p.key, "ResNet-50 → ResNet-10 in one stage, 1×1 adapters",
                 rows, baseline=student_row(p).label,
                 headline="Ours (P1+P2+P3, β, +1×1 adapters)", cost=True,
                 notes="ResNet-50's taps have 4× the student's channels, so the Gram and FSP "
                       "losses go through 1×1 conv adapters on the teacher taps (Sec. 3.5).")


def _resnet50_two_stage(n: int) -> Table:
    p = PAIRS["resnet50"]
    chain = (p.teacher, p.assistant, p.student)
    rows = (teacher_row(p), Run(f"Assistant alone ({p.assistant})", TRAIN, p.assistant),
            student_row(p),
            kd_row(p, "One stage: ours (50 → 10)", "ours", k=3),
            Run("Stage 1: ours (50 → 18)", STAGES, p.assistant, method="ours",
                options=_opts(cross_depth=p.p1_depth), num_teachers=3, chain=chain, stage=1),
            Run("Two stages: ours (50 → 18 → 10)", STAGES, p.student, method="ours",
                options=_opts(cross_depth=p.p1_depth), num_teachers=3, chain=chain))
    return Table(n, "two_stage", p.key, "ResNet-50 → ResNet-18 → ResNet-10, two-stage KD",
                 rows, baseline=student_row(p).label, headline="Two stages: ours (50 → 18 → 10)",
                 cost=True,
                 notes="Stage 1 distils ResNet-18 from K=3 ResNet-50 teachers, stage 2 "
                       "ResNet-10 from that ResNet-18 (K=1), both with the full method. The "
                       "paper's two-stage gain is compared with the student alone; its "
                       "baseline is not stated in the text we have.")


def _build() -> dict[int, Table]:
    tables = []
    for offset, builder in ((1, _main), (4, _p1), (7, _p2), (10, _p3), (13, _combinations),
                            (16, _comparison)):
        tables += [builder(offset + i, PAIRS[key]) for i, key in enumerate(_MAIN_PAIRS)]
    tables += [_resnet50_adapters(19), _resnet50_two_stage(20)]
    return {t.number: t for t in tables}


TABLES: dict[int, Table] = _build()


def get(number: int) -> Table:
    if number not in TABLES:
        raise ValueError(f"Unknown table {number!r}. Valid tables: 1..{max(TABLES)}.")
    return TABLES[number]


def parse_selection(text: str) -> list[int]:
    """`"all"`, `"4"`, `"1,4,7"` or `"4-6"` -> table numbers (validated, in order)."""
    text = str(text).strip().lower()
    if text == "all":
        return sorted(TABLES)
    numbers = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            numbers += range(int(lo), int(hi) + 1)
        elif part:
            numbers.append(int(part))
    for n in numbers:
        get(n)
    return sorted(set(numbers))
