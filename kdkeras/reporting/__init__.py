"""Reporting of reproduced tables: aggregation over seeds, table files, the paper's figures, plots.

`aggregate` (mean ± std over seeds), `tables_io` (read `results/table_N.json`,
render it beside `results/paper_reported.json`) and `plots` (accuracy curves,
β over training, ablation bars). None of them calls TensorFlow.
"""
