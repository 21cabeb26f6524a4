"""Generators and discriminators, each registered under its CLI name.

Networks take explicit arguments and never see the options object, so they can be built,
tested and loaded on their own::

    from models.networks import define_G, define_D
    netG = define_G("resnet_9blocks", input_nc=3, output_nc=3, ngf=64, norm="instance")

To add a generator: write a builder in ``generators.py`` (or a new module imported here)
decorated with ``@GENERATORS.register("my_net", size_multiple=...)`` taking the keyword
arguments of ``define_G``; ``--netG my_net`` then works, options check crops against its spec,
and the registry sweep test covers it. A discriminator likewise: ``@DISCRIMINATORS.register(
"my_d", min_input=...)`` with ``define_D``'s arguments. ``compat.py`` holds what it takes to
load the reference's checkpoints into these layouts.
"""

from models.networks import contrastive, transformer_net  # noqa: F401  (register --netG resnet_*_aa, transformer_net)
from models.networks.compat import load_net_state, patch_reference_state, reference_bias_free_keys
from models.networks.discriminators import DISCRIMINATORS, DiscriminatorSpec, define_D
from models.networks.generators import GENERATORS, UPSAMPLE_MODES, GeneratorSpec, define_G
from models.networks.layers import INIT_TYPES, NORM_TYPES, init_weights

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "DiscriminatorSpec",
    "GeneratorSpec",
    "INIT_TYPES",
    "NORM_TYPES",
    "UPSAMPLE_MODES",
    "define_D",
    "define_G",
    "init_weights",
    "load_net_state",
    "patch_reference_state",
    "reference_bias_free_keys",
]
