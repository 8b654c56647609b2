"""``fitlab-bench``: the same training through fitlab and through a plain PyTorch loop.

Both paths train the same CNN, from the same initial weights, on the same in-memory tensors,
with the same batch size, optimizer, scheduler, epochs and metric updates, in one process:

- fitlab: the real config (default callbacks, metrics, TensorBoard logger) through Lightning;
- plain (``plain.py``): forward, loss, backward, step, metric update; nothing else;
- the Lightning floor: fitlab's Classifier and Trainer without callbacks and logger, which
  shows how much of the gap is Lightning's own loop and how much is fitlab's.

Each fitlab epoch is followed by one plain epoch (``timing.py``), and the report
(``epochs.py``) takes the median of the per-epoch ratios after the warm-up. Start-up is
measured on a real ``fitlab-train`` process, from launching it to its first step.
``--whole-run`` (``whole_run.py``, ``probe.py``) times whole processes instead.
"""

from fitlab.bench.cli import main

__all__ = ["main"]
