"""Reporting of reproduced tables: aggregation over seeds, table files, the paper's figures, plots.

`aggregate` (mean ± std over seeds), `tables_io` (read `results/table_N.json`,
render it beside `results/paper_reported.json`), `plots` (accuracy curves,
β over training, ablation bars) and `ensemble_plots` (the P3 ensemble study:
accuracy and K-teacher gain per variant, Gram spread against gain). None of them
calls TensorFlow.
"""
