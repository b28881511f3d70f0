"""modules.lora.lora_load: the LoRA registry SDNext fills at startup and on refresh.

``name`` is the file's base name with '.' replaced by '_'; aliases: name, the path relative to
lora_dir without extension ('/' separators), and the natural base name. Files: .pt, .ckpt,
.safetensors under ``shared.cmd_opts.lora_dir``, recursively."""
import os

from modules import shared
from modules.logger import log
from modules.lora import network

available_networks = {}
available_network_aliases = {}
forbidden_network_aliases = {}
available_network_hash_lookup = {}


def list_available_networks():
    available_networks.clear()
    available_network_aliases.clear()
    forbidden_network_aliases.clear()
    available_network_hash_lookup.clear()
    forbidden_network_aliases.update({"none": 1, "Addams": 1})
    lora_dir = shared.cmd_opts.lora_dir
    if not os.path.exists(lora_dir):
        log.warning(f'LoRA directory not found: path="{lora_dir}"')
    candidates = []
    for root, _dirs, files in os.walk(lora_dir):
        candidates += [os.path.join(root, f) for f in files if os.path.splitext(f)[1].lower() in (".pt", ".ckpt", ".safetensors")]
    for filename in sorted(candidates):
        name = os.path.splitext(os.path.basename(filename))[0].replace('.', '_')
        try:
            entry = network.NetworkOnDisk(name, filename)
        except OSError as e:
            log.error(f'LoRA: filename="{filename}" {e}')
            continue
        available_networks[entry.name] = entry
        if entry.alias in available_network_aliases:
            forbidden_network_aliases[entry.alias.lower()] = 1
        available_network_aliases[entry.name] = entry
        if entry.fullname != entry.name:
            available_network_aliases[entry.fullname] = entry
        basename_alias = os.path.splitext(os.path.basename(filename))[0]
        if basename_alias and basename_alias not in (entry.name, entry.fullname):
            available_network_aliases.setdefault(basename_alias, entry)
        if entry.shorthash:
            available_network_hash_lookup[entry.shorthash] = entry
    log.info(f'Available LoRAs: path="{lora_dir}" items={len(available_networks)} folders={len(forbidden_network_aliases)}')
    return available_networks


def gather_networks(names):
    found = [available_network_aliases.get(name) for name in names]
    if any(x is None for x in found):  # an unknown name refreshes the registry once
        list_available_networks()
        found = [available_network_aliases.get(name) for name in names]
    return found


def network_load(names, te_multipliers=None, unet_multipliers=None, dyn_dims=None):
    from modules.lora import lora_common
    on_disk = gather_networks(names)
    lora_common.loaded_networks.clear()
    for i, (entry, name) in enumerate(zip(on_disk, names)):
        if entry is None:
            log.error(f'Network load: type=LoRA name="{name}" detected=None not loaded')
            continue
        net = network.Network(name, entry)
        net.mentioned_name = name
        entry.read_hash()
        net.te_multiplier = te_multipliers[i] if te_multipliers else shared.opts.extra_networks_default_multiplier
        net.unet_multiplier = unet_multipliers[i] if unet_multipliers else shared.opts.extra_networks_default_multiplier
        net.dyn_dim = dyn_dims[i] if dyn_dims else None
        lora_common.loaded_networks.append(net)
