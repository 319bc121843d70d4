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

The rule of controlled comparison. Every row that is compared with another
names that row (`Run.compare_to`; default the table's baseline) and differs
from it only in the factor its label names: its resolved `DistillConfig`
(the method's name aside), K, teachers, models and schedule are those of the
comparison row except for the fields of the named factors (`FACTORS`: e.g. a
label saying "cross" may change `cross_depth`, "β" `beta_mode`, "joint" the
two-stage switch, "Gram loss" the loss and its normalisation, "teachers" or
"P3" K). A row compared with the student trained alone is a whole method and
its label names the method. Hence:

  * the P1, P2 and P3 ablations are run "under the same conditions as FSP":
    FSP of the references (two-stage, sseung0703's FSP convention, β off,
    `kdkeras.distill.init_stage`) plus the one factor (cross-layer pairs, the
    KL term, K teachers);
  * the combinations walk from FSP to the paper's method one named step at a
    time (P1+P2+P3 under FSP's conditions → trained jointly → with the Gram
    loss → with β), so that "Ours − FSP" splits into its parts;
  * β gets its own rows, on and off, in every table that compares methods
    (the combinations and comparison tables); SSKD_SVD's gradient clip too.

`tests/reproduce/test_tables.py` checks the rule for all 20 tables with
`comparison_diff`. Every row of a table runs the same schedule (epochs,
learning-rate decay, batch, data), which the table file records.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from kdkeras.models.registry import PAPER_PAIRS, Pair

# What a row of a table is.
TRAIN = "train"        # a model trained alone (teacher, assistant or student baseline)
DISTILL = "distill"    # a student distilled from K teachers
STAGES = "stages"      # multi-stage KD along a chain (each student teaches the next stage)


# The pairs are the models registry's (`kdkeras.models.registry.PAPER_PAIRS`), listed once.
PAIRS: dict[str, Pair] = PAPER_PAIRS


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
      compare_to: label of the row this one is compared with (None: the
        table's baseline; rows that are not compared, the teacher and the
        baseline itself, say `NOT_COMPARED`).
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
    compare_to: Optional[str] = None

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

    def comparison_row(self, row: Run) -> Optional[Run]:
        """The row `row` is compared with (None for the baseline, teachers and `NOT_COMPARED`)."""
        if row.compare_to == NOT_COMPARED or (row.compare_to is None
                                             and row.label == self.baseline):
            return None
        return self.row(row.compare_to or self.baseline)


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


# --- the rule of controlled comparison ---------------------------------------
NOT_COMPARED = "-"

# factor -> (the fields it may change, the words of a label that name it).
FACTORS = {
    "P1": (("cross_depth",), ("cross", "p1")),
    "P2": (("use_kl",), ("kl", "p2")),
    "P3": (("num_teachers",), ("teachers", "p3")),
    "β": (("beta_mode",), ("β", "clip")),
    "stages": (("init_stage_fraction",), ("joint", "two-stage")),
    "loss": (("feature_loss", "fsp_mode", "gram_reduction", "gram_weight", "pool"),
             ("gram loss",)),
    "adapters": (("adapter_side", "always_adapt"), ("adapter",)),
    "chain": (("kind", "chain", "stage", "model"), ("stage",)),
}
# A distillation compared with its student trained alone is a whole method;
# its label names it.
METHOD_WORDS = {"hinton": "hinton", "fsp": "fsp", "fsp_joint": "fsp", "fsp_kl": "fsp",
                "rkd": "rkd", "sskd_svd": "sskd_svd", "p1": "p1", "p1_p2": "p1",
                "ours": "ours"}


def resolved(row: Run) -> dict:
    """What a row runs: its `DistillConfig` (without the method's name), K, models, chain."""
    from kdkeras.distill import method_config

    config = dataclasses.asdict(method_config(row.method, **dict(row.options)))
    config.pop("method")
    if row.kind == TRAIN:
        config = {}
    teacher = row.teacher or (row.chain[0] if row.chain else None)
    return {**config, "kind": row.kind, "model": row.model, "teacher": teacher,
            "num_teachers": row.num_teachers, "chain": tuple(row.chain), "stage": row.stage}


def comparison_diff(table: "Table", row: Run) -> dict:
    """{field: (comparison's value, row's value)} for what `row` changes that its label does not name.

    Empty when the rule holds (or the row is not compared).
    """
    other = table.comparison_row(row)
    if other is None:
        return {}
    mine, theirs = resolved(row), resolved(other)
    label = row.label.lower()
    if other.kind == TRAIN and row.kind != TRAIN:
        # A whole method against the student alone: the label names the method,
        # the student and the schedule are the same.
        unnamed = {} if METHOD_WORDS.get(row.method, "\0") in label else {"method": row.method}
        keep = ("model",) if row.kind == DISTILL else ()
        return {**unnamed, **{k: (theirs[k], mine[k]) for k in keep if mine[k] != theirs[k]}}
    allowed = set()
    for fields, words in FACTORS.values():
        if any(w in label for w in words):
            allowed.update(fields)
    keys = set(mine) | set(theirs)
    return {k: (theirs.get(k), mine.get(k)) for k in sorted(keys)
            if mine.get(k) != theirs.get(k) and k not in allowed}


# --- row builders -------------------------------------------------------------
def _opts(**options) -> tuple:
    return tuple(sorted(options.items()))


def teacher_row(p: Pair) -> Run:
    return Run(f"Teacher ({p.teacher})", TRAIN, p.teacher, compare_to=NOT_COMPARED)


def student_row(p: Pair, compare_to: Optional[str] = None) -> Run:
    return Run(f"Student alone ({p.student})", TRAIN, p.student, compare_to=compare_to)


def kd_row(p: Pair, label: str, method: str, k: int = 1, in_paper: bool = True,
           compare_to: Optional[str] = None, **options) -> Run:
    """A distillation of the pair's student; gram-based rows get the pair's P1 depth."""
    if method in ("p1", "p1_p2", "ours") and "cross_depth" not in options:
        options["cross_depth"] = p.p1_depth
    return Run(label, DISTILL, p.student, teacher=p.teacher, method=method,
               options=_opts(**options), num_teachers=k, in_paper=in_paper,
               compare_to=compare_to)


def ours_row(p: Pair, compare_to: Optional[str] = None) -> Run:
    return kd_row(p, _OURS, "ours", k=3, compare_to=compare_to)


def ours_beta_off_row(p: Pair, label: str, compare_to: Optional[str] = None) -> Run:
    """The paper's method with β off: P1+P2+P3, joint, the Gram loss (one run, two labels)."""
    return kd_row(p, label, "ours", k=3, in_paper=False, compare_to=compare_to,
                  beta_mode="off")


_FSP, _OURS = "FSP", "Ours (P1+P2+P3, β)"
_ORDINAL = {1: "one", 2: "two", 3: "three", 4: "four"}


def _fsp_row(p: Pair, label: str = _FSP, k: int = 1, in_paper: bool = True,
             compare_to: Optional[str] = None, **options) -> Run:
    """A row "under the same conditions as FSP": two-stage FSP plus the factors in `options`."""
    return kd_row(p, label, "fsp", k=k, in_paper=in_paper, compare_to=compare_to, **options)


def _fsp_joint_row(p: Pair) -> Run:
    return kd_row(p, "FSP, joint (one stage)", "fsp_joint", in_paper=False, compare_to=_FSP)


def _main(n: int, p: Pair) -> Table:
    return Table(n, "main", p.key, f"Main result, {p.title}",
                 (teacher_row(p), student_row(p), ours_row(p)),
                 baseline=student_row(p).label, headline=_OURS, cost=True,
                 notes="Rows: the teacher, the student alone and the full method with K=3 "
                       "teachers. The gain is Ours minus the student alone.")


def _p1(n: int, p: Pair) -> Table:
    student = student_row(p, compare_to=NOT_COMPARED)
    rows = [student, _fsp_row(p, compare_to=student.label), _fsp_joint_row(p),
            # The paper's cross-one row is FSP itself (the same run), not a comparison.
            _fsp_row(p, "P1 cross-one (FSP's pairs)", compare_to=NOT_COMPARED)]
    rows += [_fsp_row(p, f"P1 cross-{_ORDINAL[d]}", cross_depth=(d,))
             for d in range(2, p.p1_depth + 1)]
    union = f"P1 (cross-one..{_ORDINAL[p.p1_depth]})"
    rows.append(_fsp_row(p, union, cross_depth=p.p1_depth))
    return Table(n, "p1", p.key, f"P1 ablation, {p.title}", tuple(rows),
                 baseline=_FSP, headline=union,
                 notes="One teacher, no KL, under FSP's conditions: every P1 row is the FSP "
                       "baseline (two-stage, sseung0703's FSP convention, β off) with other "
                       "tap pairs. Cross-d rows use the pairs exactly d taps apart; the last "
                       "row is the union the paper calls P1, and the paper's P1 gain over "
                       "FSP is read as that union minus FSP. 'FSP, joint' (kdkeras) trains "
                       "FSP with CE from the first epoch.")


def _p2(n: int, p: Pair) -> Table:
    student = student_row(p, compare_to=NOT_COMPARED)
    rows = (student, kd_row(p, "Hinton KD", "hinton", compare_to=student.label),
            _fsp_row(p, compare_to=student.label), _fsp_joint_row(p),
            _fsp_row(p, "FSP + KL (P2)", use_kl=True))
    return Table(n, "p2", p.key, f"P2 ablation, {p.title}", rows, baseline=_FSP,
                 headline="FSP + KL (P2)",
                 notes="One teacher. P2 adds the KL term (T = 1) to FSP under FSP's "
                       "conditions: the KL term trains with CE after FSP's initialisation "
                       "stage. The paper's P2 gain over FSP is read as FSP+KL minus FSP.")


# Each teacher's Grams matched through its own 1×1 adapter on the student's taps:
# teachers trained from different seeds do not share a channel basis, so one student
# Gram cannot match all of them, but K projections of it can (kdkeras addition).
_OWN_ADAPTERS = dict(always_adapt=True, adapter_side="student")


def _p3(n: int, p: Pair) -> Table:
    student = student_row(p, compare_to=NOT_COMPARED)
    rows = (student, _fsp_row(p, compare_to=student.label),
            _fsp_row(p, "FSP, 2 teachers (P3)", k=2),
            _fsp_row(p, "FSP, 3 teachers (P3)", k=3),
            _fsp_row(p, "FSP, student adapter", in_paper=False, **_OWN_ADAPTERS),
            _fsp_row(p, "FSP, 3 teachers, a student adapter per teacher", k=3, in_paper=False,
                     compare_to="FSP, student adapter", **_OWN_ADAPTERS))
    return Table(n, "p3", p.key, f"P3 ablation, {p.title}", rows, baseline=_FSP,
                 headline="FSP, 3 teachers (P3)",
                 notes="P3 is applied to the FSP baseline (the paper quotes P3's gain over "
                       "FSP): K = 1, 2, 3 teachers of different seeds. The adapter rows are a "
                       "kdkeras addition: each teacher's Grams are matched through its own "
                       "trained 1×1 conv on the student's taps (always_adapt, "
                       "adapter_side='student'), with its one-teacher twin.")


def _combinations(n: int, p: Pair) -> Table:
    student = student_row(p, compare_to=NOT_COMPARED)
    d = p.p1_depth
    chain = ("P1+P2+P3 (FSP's conditions)", "P1+P2+P3, joint",
             "P1+P2+P3, joint, Gram loss (β off)")
    rows = (student, _fsp_row(p, compare_to=student.label),
            _fsp_row(p, "P1+P2", cross_depth=d, use_kl=True),
            _fsp_row(p, "P1+P3", k=3, cross_depth=d),
            _fsp_row(p, "P2+P3", k=3, use_kl=True),
            _fsp_row(p, chain[0], k=3, in_paper=False, cross_depth=d, use_kl=True),
            kd_row(p, chain[1], "fsp_joint", k=3, in_paper=False, compare_to=chain[0],
                   cross_depth=d, use_kl=True),
            ours_beta_off_row(p, chain[2], compare_to=chain[1]),
            ours_row(p, compare_to=chain[2]),
            kd_row(p, "Ours, a student adapter per teacher", "ours", k=3, in_paper=False,
                   compare_to=_OURS, **_OWN_ADAPTERS))
    return Table(n, "combinations", p.key, f"Combinations, {p.title}", rows, baseline=_FSP,
                 headline=_OURS,
                 notes="P1+P2, P1+P3 and P2+P3 are FSP under its own conditions (two-stage, "
                       "sseung0703's FSP convention, β off) with those parts. The kdkeras rows "
                       "then walk from P1+P2+P3 under FSP's conditions to the paper's method "
                       "one named step at a time: trained jointly, with the paper's Gram loss "
                       "(average pooling, squares averaged per entry), with β. The headline is "
                       "the paper's Ours minus FSP, the sum of those steps. The adapter row "
                       "matches each teacher's Grams through its own 1×1 conv on the "
                       "student's taps.")


def _comparison(n: int, p: Pair) -> Table:
    student = student_row(p)
    rows = (teacher_row(p), student, kd_row(p, "Hinton KD", "hinton"),
            _fsp_row(p), kd_row(p, "SSKD_SVD", "sskd_svd"),
            kd_row(p, "SSKD_SVD, gradient clip off", "sskd_svd", in_paper=False,
                   compare_to="SSKD_SVD", beta_mode="off"),
            kd_row(p, "RKD", "rkd"), ours_row(p),
            ours_beta_off_row(p, "Ours, β off", compare_to=_OURS),
            kd_row(p, "Ours without P3 (teacher 0 alone)", "ours", k=1, in_paper=False,
                   compare_to=_OURS))
    return Table(n, "comparison", p.key, f"Comparison with other KD methods, {p.title}",
                 rows, baseline=student.label, headline=_OURS, cost=True,
                 notes="Baselines use one teacher, ours K=3; each is compared with the student "
                       "alone. FSP is two-stage as in its references. SSKD_SVD keeps its code's "
                       "per-variable gradient clip (sseung0703's rule); the clip-off and β-off "
                       "rows (kdkeras) isolate those gradient rules, and the row without P3 "
                       "(kdkeras; ours with teacher 0 alone, the baselines' teacher) "
                       "isolates the ensemble, so each baseline can be read against ours "
                       "with the same one teacher. Cost columns are the "
                       "teacher's and the student's (params, FLOPs, batch-1 latency).")


def _resnet50_adapters(n: int) -> Table:
    p = PAIRS["resnet50"]
    rows = (teacher_row(p), student_row(p), kd_row(p, "Hinton KD", "hinton"),
            _fsp_row(p, "FSP (+1×1 adapters)"),
            kd_row(p, "Ours (P1+P2+P3, β, +1×1 adapters)", "ours", k=3))
    return Table(n, "two_stage", p.key, "ResNet-50 → ResNet-10 in one stage, 1×1 adapters",
                 rows, baseline=student_row(p).label,
                 headline="Ours (P1+P2+P3, β, +1×1 adapters)", cost=True,
                 notes="ResNet-50's taps have 4× the student's channels, so the Gram and FSP "
                       "losses go through 1×1 conv adapters on the teacher taps (Sec. V-B). "
                       "FSP is two-stage as in its references.")


def _resnet50_two_stage(n: int) -> Table:
    p = PAIRS["resnet50"]
    chain = (p.teacher, p.assistant, p.student)
    assistant = f"Assistant alone ({p.assistant})"
    one_stage = "One stage: ours (50 → 10)"
    rows = (teacher_row(p), Run(assistant, TRAIN, p.assistant, compare_to=NOT_COMPARED),
            student_row(p),
            kd_row(p, one_stage, "ours", k=3),
            Run("Stage 1: ours (50 → 18)", STAGES, p.assistant, method="ours",
                options=_opts(cross_depth=p.p1_depth), num_teachers=3, chain=chain, stage=1,
                compare_to=assistant),
            Run("Two stages: ours (50 → 18 → 10)", STAGES, p.student, method="ours",
                options=_opts(cross_depth=p.p1_depth), num_teachers=3, chain=chain,
                compare_to=one_stage))
    return Table(n, "two_stage", p.key, "ResNet-50 → ResNet-18 → ResNet-10, two-stage KD",
                 rows, baseline=student_row(p).label, headline="Two stages: ours (50 → 18 → 10)",
                 cost=True,
                 notes="Stage 1 distils ResNet-18 from K=3 ResNet-50 teachers, stage 2 "
                       "ResNet-10 from that ResNet-18 (K=1), both with the full method "
                       "(Sec. V-B). The paper's two-stage gain is compared with the student "
                       "alone (the headline); the controlled comparison of the two-stage row "
                       "is the one-stage row.")


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
