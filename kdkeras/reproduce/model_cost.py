"""The paper's models at the paper's input shapes: tap counts and cost columns, each once.

Tables of several pairs ask for the same models (every table of a pair needs the
tap counts of its teacher and student; six tables have cost columns), so each
model is built once per process and its cost measured once.
"""

from __future__ import annotations

from kdkeras import models
from kdkeras.utils import cost


class ModelCosts:
    """Builds each registered model once (at its registry input shape) and measures it once."""

    def __init__(self, latency_repeats: int):
        self.latency_repeats = latency_repeats
        self._models = {}
        self._cost = {}

    def model(self, name: str):
        """`name` as the paper builds it (its registry input shape and class count)."""
        if name not in self._models:
            self._models[name] = models.get(name)
        return self._models[name]

    def tap_count(self, name: str) -> int:
        return len(models.tap_names(self.model(name)))

    def cost(self, name: str) -> dict:
        """Params / MACs / FLOPs / batch-1 latency of `name` at the paper's input shape."""
        if name not in self._cost:
            model = self.model(name)
            latency = cost.measure_latency(model, batch_size=1, repeats=self.latency_repeats,
                                           warmup=min(5, self.latency_repeats))
            self._cost[name] = {
                "params": cost.count_params(model), "macs": cost.count_macs(model),
                "flops": cost.count_flops(model), "input_shape": list(model.input_shape[1:]),
                "num_classes": int(model.output_shape[-1]), "latency": latency}
        return self._cost[name]

    def note(self) -> str:
        return ("Params/FLOPs at the paper's input shapes and class counts "
                "(kdkeras.utils.cost; FLOPs = 2 x MACs); latency: batch 1, median of "
                f"{self.latency_repeats} predict_on_batch calls on this machine.")
