"""kdkeras.reproduce.tables: the paper's Tables 1–20 as data, and the paper's figures' rows."""

import json

import pytest

from helpers import REPO
from kdkeras.reproduce import tables


def test_twenty_tables_in_seven_groups():
    assert sorted(tables.TABLES) == list(range(1, 21))
    groups = {}
    for t in tables.TABLES.values():
        groups.setdefault(t.group, []).append(t.number)
    assert groups == {"main": [1, 2, 3], "p1": [4, 5, 6], "p2": [7, 8, 9], "p3": [10, 11, 12],
                      "combinations": [13, 14, 15], "comparison": [16, 17, 18],
                      "two_stage": [19, 20]}
    assert [tables.TABLES[n].pair for n in (1, 2, 3, 19, 20)] == [
        "vgg", "resnet", "mobilenet", "resnet50", "resnet50"]
    assert {t.number for t in tables.TABLES.values() if t.cost} == {1, 2, 3, 16, 17, 18, 19, 20}


@pytest.mark.parametrize("number", sorted(tables.TABLES))
def test_every_table_is_well_formed(number):
    from kdkeras import models
    from kdkeras.distill import METHODS

    t = tables.TABLES[number]
    labels = [r.label for r in t.rows]
    assert len(set(labels)) == len(labels)
    t.row(t.baseline), t.row(t.headline)  # both exist
    for r in t.rows:
        models.spec(r.model)
        assert r.method in METHODS
        if r.kind == tables.DISTILL:
            models.spec(r.teacher)
            assert r.num_teachers >= 1 and r.teacher == tables.PAIRS[t.pair].teacher
        if r.kind == tables.STAGES:
            assert r.chain[0] == tables.PAIRS[t.pair].teacher and r.num_teachers >= 1


def test_ablation_rows_have_the_papers_switches():
    vgg_p1 = tables.get(4)
    assert [r.cross_depth for r in vgg_p1.rows] == [None, 1, 1, 1, (2,), (3,), 3]
    assert [r.cross_depth for r in tables.get(6).rows][-2:] == [(4,), 4]  # MobileNet: cross-four
    assert [r.num_teachers for r in tables.get(10).rows] == [0, 1, 2, 3, 1, 3]
    assert {r.method for r in tables.get(10).rows[1:]} == {"fsp"}
    # The adapter rows (a kdkeras addition): one student-side adapter per teacher, always.
    adapters = [r for r in tables.get(10).rows + tables.get(13).rows
                if dict(r.options).get("always_adapt")]
    assert [(r.method, r.num_teachers, r.in_paper, dict(r.options)["adapter_side"])
            for r in adapters] == [("fsp", 1, False, "student"), ("fsp", 3, False, "student"),
                                   ("ours", 3, False, "student")]
    p2 = tables.get(7)
    assert [r.method for r in p2.rows] == ["student", "hinton", "fsp", "fsp_joint", "fsp"]
    assert dict(p2.row("FSP + KL (P2)").options) == {"use_kl": True}
    ours = tables.get(3).row(tables.get(3).headline)
    assert (ours.method, ours.num_teachers, dict(ours.options)) == ("ours", 3, {"cross_depth": 4})
    beta_off = tables.get(13).row("P1+P2+P3, joint, Gram loss (β off)")
    assert dict(beta_off.options)["beta_mode"] == "off" and not beta_off.in_paper


@pytest.mark.parametrize("number", sorted(tables.TABLES))
def test_every_row_differs_from_its_comparison_row_only_in_what_its_label_names(number):
    table = tables.TABLES[number]
    for row in table.rows:
        assert tables.comparison_diff(table, row) == {}, (number, row.label)
        other = table.comparison_row(row)
        if other is not None and other.kind != tables.TRAIN:
            # And they differ at all: a comparison with an identical run measures nothing.
            assert tables.resolved(row) != tables.resolved(other), (number, row.label)


def test_the_row_diff_catches_what_a_label_does_not_name():
    p = tables.PAIRS["resnet"]
    fsp = tables.kd_row(p, "FSP", "fsp")
    cases = {
        # The confounds of the issue: P1 with the Gram loss and β against FSP.
        "P1 (cross-one..three)": (tables.kd_row(p, "P1 (cross-one..three)", "p1"),
                                  {"feature_loss", "init_stage_fraction"}),
        "P1 with β": (tables.kd_row(p, "P1 cross-three", "fsp", cross_depth=3,
                                    beta_mode="paper"), {"beta_mode"}),
        "KL under another name": (tables.kd_row(p, "FSP, 3 teachers", "fsp", k=3, use_kl=True),
                                  {"use_kl"}),
        "joint FSP as FSP + KL": (tables.kd_row(p, "FSP + KL (P2)", "fsp_joint", use_kl=True),
                                  {"init_stage_fraction"}),
    }
    for name, (row, unnamed) in cases.items():
        table = tables.Table(99, "p1", "resnet", "t", (fsp, row), baseline="FSP", headline="FSP")
        assert set(tables.comparison_diff(table, row)) == unnamed, name
    # Against the student alone, the label must name the method, and the student be the same.
    student = tables.student_row(p)
    row = tables.kd_row(p, "Distilled", "rkd")
    table = tables.Table(99, "comparison", "resnet", "t", (student, row),
                         baseline=student.label, headline="Distilled")
    assert tables.comparison_diff(table, row) == {"method": "rkd"}


@pytest.mark.parametrize("number", [n for n, t in tables.TABLES.items()
                                    if t.group in ("comparison", "combinations")])
def test_tables_comparing_methods_have_beta_on_and_off_rows(number):
    table = tables.TABLES[number]
    # The paper's methods with a gradient rule (β, SSKD_SVD's clip) each have a twin without it.
    beta_on = [r for r in table.rows if r.kind == tables.DISTILL and r.in_paper
               and tables.resolved(r)["beta_mode"] != "off"]
    assert beta_on
    for row in beta_on:
        twins = [r for r in table.rows if r.kind == tables.DISTILL and r is not row and {
            k for k in tables.resolved(r) if tables.resolved(r)[k] != tables.resolved(row)[k]}
            == {"beta_mode"}]
        assert twins, (number, row.label)


def test_fsp_of_the_tables_is_two_stage_and_joint_fsp_is_a_named_row():
    for table in tables.TABLES.values():
        for row in table.rows:
            config = tables.resolved(row)
            if config.get("feature_loss") == "fsp":
                joint = config["init_stage_fraction"] == 0
                assert joint == ("joint" in row.label), (table.number, row.label)


def test_paper_figures_point_at_existing_tables_and_rows():
    paper = json.loads((REPO / "results" / "paper_reported.json").read_text())
    figures = paper["figures"]
    assert {f["source"] for f in figures.values()} <= set(paper["sources"])
    for key, f in figures.items():
        for n in f["tables"]:
            t = tables.get(n)
            if f["kind"] in ("top1", "gap"):
                t.row(f["row"])
            if f["kind"] == "gap":
                assert f["over"] == t.baseline, (key, n)
    # The figures the brief quotes, each once.
    values = sorted(f["value"] for f in figures.values() if f["kind"] in ("top1", "gap"))
    assert values == sorted([66.67, 68.45, 49.86, 3.57, 4.38, 3.98, 0.4, 0.13, 3.38, 1.54, 1.54,
                             2.59, 1.66, 1.31, 2.27, 2.98, 4.04, 3.45])
    assert figures["inference_ms.resnet50"]["value"] == {"resnet50": 188.9, "resnet10": 66.3}


@pytest.mark.parametrize("text, expected", [
    ("all", list(range(1, 21))), ("4", [4]), ("7,1, 4", [1, 4, 7]), ("4-6", [4, 5, 6])])
def test_table_selection(text, expected):
    assert tables.parse_selection(text) == expected


def test_unknown_table_is_refused():
    with pytest.raises(ValueError, match="Unknown table 21"):
        tables.parse_selection("21")


def test_the_tables_pairs_are_the_model_registrys_listed_once():
    from kdkeras import models

    assert tables.PAIRS is models.PAPER_PAIRS
    assert {t.pair for t in tables.TABLES.values()} == set(models.PAPER_PAIRS)
    two_stage = tables.get(20).rows
    assert {r.chain for r in two_stage if r.kind == tables.STAGES} == {
        ("resnet50", "resnet18", "resnet10")}
