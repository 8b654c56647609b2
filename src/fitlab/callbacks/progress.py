"""Lightning's rich progress bar, updated every n training batches instead of every batch.

Lightning 2.6's ``RichProgressBar`` reads the metrics and updates its task on every batch; its
``refresh_rate`` is how many times a second a thread redraws. The per-batch update is a visible
share of a small CNN's CPU step (measured by ``scripts/hook_costs.py``); Lightning's own
``TQDMProgressBar`` updates every n batches, and this gives the rich bar the same throttle.

Lightning rebuilds rich's global console with the bar's ``console_kwargs`` whenever a bar
starts; without a width there it fell back to 80 columns off a terminal, which wrapped the bar's
metrics and, from the second job of a multirun on, the model summary (``fitlab/run/console.py``).
"""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar

from fitlab.run.console import console_kwargs


class ThrottledRichProgressBar(RichProgressBar):
    """Updates the training bar and its metrics every ``update_every_n_batches`` batches and on
    the last batch of an epoch; everything else is Lightning's ``RichProgressBar``."""

    def __init__(self, update_every_n_batches: int = 10, **kwargs) -> None:
        kwargs.setdefault("console_kwargs", console_kwargs())
        super().__init__(**kwargs)
        self.update_every_n_batches = max(1, update_every_n_batches)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        done = batch_idx + 1
        last = done == self.total_train_batches
        if done % self.update_every_n_batches == 0 or last:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
