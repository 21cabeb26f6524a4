"""Generators and discriminators, each registered under its CLI name.

Networks take explicit arguments and never see the options object, so they can be built,
tested and loaded on their own::

    from models.networks import define_G, define_D
    netG = define_G("resnet_9blocks", input_nc=3, output_nc=3, ngf=64, norm="instance")

To add a generator: write a builder in ``generators.py`` (or a new module imported here)
decorated with ``@GENERATORS.register("my_net")`` taking the keyword arguments of
``define_G``; ``--netG my_net`` then works and the registry sweep test covers it.
"""

from models.networks.discriminators import DISCRIMINATORS, define_D
from models.networks.generators import GENERATORS, define_G, generator_size_multiple
from models.networks.layers import INIT_TYPES, NORM_TYPES, init_weights

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "INIT_TYPES",
    "NORM_TYPES",
    "define_D",
    "define_G",
    "generator_size_multiple",
    "init_weights",
]
