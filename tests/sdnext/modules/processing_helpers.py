"""modules.processing_helpers: seeds and sampler names as SDNext resolves them."""
import random

from modules import sd_samplers
from modules.logger import log


def get_fixed_seed(seed):
    """-1, None and '' mean "random": a fresh int below 4294967294."""
    if seed is None or seed == '' or seed == -1:
        random.seed()
        seed = int(random.randrange(4294967294))
    return seed


def get_sampler_name(sampler_index=None, img=False):  # pylint: disable=unused-argument
    index = sampler_index or 0
    if index < len(sd_samplers.samplers):
        name = sd_samplers.samplers[index].name
    else:
        name = "Default"
        log.warning(f'Sampler not found: index={index} fallback={name}')
    if sd_samplers.is_separator(name):  # a divider row of the dropdown
        name = "Default"
    return name
