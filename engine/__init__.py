"""The run: what happens between parsing the options and the last checkpoint.

- ``checkpoint.py``: the checkpoint format, atomic save, ``weights_only`` load, the reference's
  per-network files, RNG states;
- ``position.py``: the epoch / samples / iterations arithmetic (``RunPosition``);
- ``saving.py``: what is saved when (``SavePolicy``);
- ``run.py``: the run folder: resuming (options, position, state), saving, ``opt.yaml``;
- ``tracking.py``: losses accumulated on the device, the NaN/inf stop, step timing;
- ``signals.py``: SIGINT/SIGTERM end in a clean save;
- ``evaluation.py`` / ``report.py``: translate and score a checkpoint; the run's summary.

Engine code is generic: it asks models, datasets and metrics through their interfaces and
registries' specs, never by name. A new model needs nothing here.
"""
