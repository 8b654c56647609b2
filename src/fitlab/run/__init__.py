"""The plumbing of a run: its config, the checks before it, its folder, checkpoints and logs.

None of it answers a seed question; the models, data and callbacks packages do.
"""
