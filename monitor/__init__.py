"""Monitoring: the ``Visualizer`` facade the training loop talks to, over small backends.

``base.py`` (``Backend``, ``LogRecord``), ``logs.py`` (console, ``loss_log.txt``/``.jsonl``: the
record of a run), ``visdom_backend.py`` (live curves and images), ``html_backend.py`` (the page
of visuals), ``tensorboard_backend.py`` and ``wandb_backend.py`` (experiment trackers, optional
packages; ``trackers.py``: what they share). To add a view: subclass ``Backend`` in a new module, implement
the methods it needs, and add it in ``Visualizer.for_training``. Monitor never imports engine.
"""

from monitor.base import Backend, LogRecord
from monitor.visualizer import Visualizer

__all__ = ["Backend", "LogRecord", "Visualizer"]
