"""modules.sd_samplers: the sampler list of SDNext's diffusers backend.

``samplers`` includes 'Default' (the model's own scheduler) and divider rows whose names start
with a box-drawing character; ``visible_samplers()`` leaves the dividers out."""
from typing import NamedTuple


class SamplerData(NamedTuple):
    name: str
    constructor: object
    aliases: list
    options: dict


def _sampler(name):
    return SamplerData(name, None if is_separator(name) else name, [], {})


def is_separator(name):
    return isinstance(name, str) and name.startswith('\u2500')


_NAMES = [
    'Default',
    '\u2500\u2500 Euler \u2500\u2500', 'Euler', 'Euler a', 'Euler SGM', 'Euler EDM', 'Euler FlowMatch',
    '\u2500\u2500 DPM / DPM++ \u2500\u2500', 'DPM++', 'DPM++ 2M', 'DPM++ 3M', 'DPM++ 1S', 'DPM++ SDE', 'DPM++ 2M SDE',
    'DPM++ 2M EDM', 'DPM SDE', 'DPM2 FlowMatch',
    '\u2500\u2500 UniPC / DEIS \u2500\u2500', 'UniPC', 'UniPC FlowMatch', 'DEIS', 'SA Solver',
    '\u2500\u2500 Heun / KDPM2 \u2500\u2500', 'Heun', 'KDPM2', 'KDPM2 a',
    '\u2500\u2500 Classic \u2500\u2500', 'DDIM', 'DDPM', 'PNDM', 'LMSD',
    '\u2500\u2500 Distilled \u2500\u2500', 'LCM', 'TCD',
]
all_samplers = [_sampler(n) for n in _NAMES]
all_samplers_map = {s.name: s for s in all_samplers}
samplers = all_samplers
samplers_for_img2img = all_samplers


def visible_samplers(img=False):
    pool = samplers_for_img2img if img else samplers
    return [s for s in pool if not is_separator(s.name)]


def find_sampler(name):
    if name is None or name == 'None':
        return all_samplers_map.get("Default")
    for sampler in all_samplers:
        if sampler.name.lower() == name.lower() or name in sampler.aliases:
            return sampler
    return None
