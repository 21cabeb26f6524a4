"""Options: the argparse schema (``schema.py``: every flag with its scope), parsing with
precedence and strict YAML (``parse.py``), derived values and cross-checks that ask the
registries' specs (``resolve.py``).

To add an option: declare it in ``schema.py`` (or in a model's or dataset's ``modify_options``
hook), with ``scope=`` when test.py must take it from the trained run (ARCHITECTURE), when a
resumed run cannot change it (FIXED), or when it belongs to one invocation (INVOCATION).
"""

from options.parse import Options, build_parser, evaluation_options, format_options, parse_options, save_options
from options.resolve import gpu_ids, test_load_size
from options.schema import metric_names
from util.flags import ARCHITECTURE, FIXED, INVOCATION, TEST_TIME

__all__ = [
    "ARCHITECTURE",
    "FIXED",
    "INVOCATION",
    "TEST_TIME",
    "Options",
    "build_parser",
    "evaluation_options",
    "format_options",
    "gpu_ids",
    "metric_names",
    "parse_options",
    "save_options",
    "test_load_size",
]
