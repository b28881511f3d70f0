"""modules.lora.extra_networks_lora: what ``<lora:NAME:W>`` does at generation time.

Weights: positional W (default ``extra_networks_default_multiplier``), named te=, unet=
(in=/mid=/out= per block); te=0 with every unet=0 skips the LoRA. Loading fills
``lora_common.loaded_networks`` with the LoRAs found in the registry (unknown names: logged
"not loaded"), wrapped in state.begin('LoRA')/end when the set changed, and writes
``LoRA networks`` (plus ``LoRA hashes`` with lora_add_hashes_to_infotext) into
``p.extra_generation_params``."""
from modules import extra_networks, shared
from modules.logger import log
from modules.lora import lora_common as l
from modules.lora import lora_load


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def infotext(p):
    names = [n.name for n in l.loaded_networks]
    if names:
        p.extra_generation_params["LoRA networks"] = ", ".join(names)
    if shared.opts.lora_add_hashes_to_infotext:
        hashes = [n.network_on_disk.shorthash for n in l.loaded_networks if n.network_on_disk.shorthash]
        if hashes:
            p.extra_generation_params["LoRA hashes"] = ", ".join(hashes)


def parse(p, params_list):  # pylint: disable=unused-argument
    names, te_multipliers, unet_multipliers, dyn_dims = [], [], [], []
    for params in params_list:
        default = _number(params.positional[1]) if len(params.positional) > 1 else shared.opts.extra_networks_default_multiplier
        if isinstance(default, str) and "@" not in default:
            default = shared.opts.extra_networks_default_multiplier
        te = _number(params.named.get("te", default))
        unet = [params.named.get(block, params.named.get("unet", te)) for block in ("in", "mid", "out")]
        unet = [_number(u) for u in unet]
        if te == 0 and all(u == 0 for u in unet):
            continue
        names.append(params.positional[0])
        te_multipliers.append(te)
        unet_multipliers.append(unet)
        dyn_dims.append(int(params.named["dyn"]) if "dyn" in params.named else None)
    return names, te_multipliers, unet_multipliers, dyn_dims


class ExtraNetworkLora(extra_networks.ExtraNetwork):
    def __init__(self):
        super().__init__('lora')
        self.loaded_signature = None

    def activate(self, p, params_list, step=0, include=None, exclude=None):  # pylint: disable=arguments-differ,unused-argument
        names, te, unet, dyn = parse(p, params_list)
        signature = [f'{n}:{t}:{u}' for n, t, u in zip(names, te, unet)]
        if signature != self.loaded_signature:
            self.loaded_signature = signature
            jobid = shared.state.begin('LoRA')
            lora_load.network_load(names, te, unet, dyn)
            shared.state.end(jobid)
        if l.loaded_networks and step == 0:
            infotext(p)
            log.info(f'Network load: type=LoRA networks={[n.name for n in l.loaded_networks]} te={te} unet={unet}')

    def deactivate(self, p, force=False):
        if force:
            l.loaded_networks.clear()
            self.loaded_signature = None
