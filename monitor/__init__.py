"""Monitoring: the ``Visualizer`` facade the training loop talks to, over small backends.

``base.py`` (``Backend``, ``LogRecord``), ``logs.py`` (console, ``loss_log.txt``/``.jsonl``: the
record of a run), ``visdom_backend.py`` (live curves and images), ``html_backend.py`` (the page
of visuals). To add a view (TensorBoard, wandb): subclass ``Backend`` in a new module, implement
the methods it needs, and add it in ``Visualizer.for_training``. Monitor never imports engine.
"""

from monitor.base import Backend, LogRecord
from monitor.visualizer import Visualizer

__all__ = ["Backend", "LogRecord", "Visualizer"]
