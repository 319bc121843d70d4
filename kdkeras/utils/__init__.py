"""kdkeras.utils: model cost (parameters, MACs / FLOPs, latency)."""

from kdkeras.utils.cost import (
    cost_report,
    count_flops,
    count_macs,
    count_params,
    measure_latency,
)

__all__ = ["cost_report", "count_flops", "count_macs", "count_params", "measure_latency"]
