"""modules.extra_networks: ``<type:arg:arg>`` tokens in prompts and the networks they activate.

Tokens are cut out of ``p.prompts`` (``p.all_prompts`` keeps them); the last prompt of a batch
that has tokens decides the batch's networks. Registered types: 'lora' (and SDNext's 'style',
not imitated); an unknown type is skipped with a warning."""
import re
from collections import defaultdict

from modules import errors
from modules.logger import log

extra_network_registry = {}
re_extra_net = re.compile(r"<(\w+):([^>]+)>")


def initialize():
    extra_network_registry.clear()


def register_extra_network(extra_network):
    extra_network_registry[extra_network.name] = extra_network


def register_default_extra_networks():
    from modules.lora import extra_networks_lora, lora_common
    lora_common.extra_network_lora = extra_networks_lora.ExtraNetworkLora()
    register_extra_network(lora_common.extra_network_lora)


class ExtraNetworkParams:
    def __init__(self, items=None):
        self.items = items or []
        self.positional = []
        self.named = {}
        for item in self.items:
            parts = item.split('=', 2) if isinstance(item, str) else [item]
            if len(parts) == 2:
                self.named[parts[0]] = parts[1]
            else:
                self.positional.append(item)

    def __eq__(self, other):
        return isinstance(other, ExtraNetworkParams) and (self.positional, self.named) == (other.positional, other.named)

    def __repr__(self):
        return f"NetworkParams(positional={self.positional} named={self.named})"


class ExtraNetwork:
    def __init__(self, name):
        self.name = name

    def activate(self, p, params_list, *args, **kwargs):
        raise NotImplementedError

    def deactivate(self, p, force=False):
        raise NotImplementedError


def activate(p, extra_network_data=None, step=0):
    if p.disable_extra_networks:
        return
    extra_network_data = extra_network_data or p.network_data
    for name, args in extra_network_data.items():
        network = extra_network_registry.get(name)
        if network is None:
            log.warning(f"Skipping unknown extra network: {name}")
            continue
        try:
            network.activate(p, args, step=step)
        except Exception as e:  # pylint: disable=broad-except
            errors.display(e, f"Activating network: type={name} args:{args}")
    for name, network in extra_network_registry.items():  # the unmentioned ones get an empty list
        if name in extra_network_data:
            continue
        try:
            network.activate(p, [])
        except Exception as e:  # pylint: disable=broad-except
            errors.display(e, f"Activating network: type={name}")
    p.network_data = extra_network_data


def deactivate(p, extra_network_data=None, force=False):
    if p.disable_extra_networks:
        return
    for name, network in extra_network_registry.items():
        try:
            network.deactivate(p, force=force)
        except Exception as e:  # pylint: disable=broad-except
            errors.display(e, f"deactivating extra network {name}")


def parse_prompt(prompt):
    found = defaultdict(list)
    if prompt is None:
        return "", found
    if isinstance(prompt, list):
        return parse_prompts(prompt)

    def cut(m):
        found[m.group(1)].append(ExtraNetworkParams(items=m.group(2).split(":")))
        return ""

    return re.sub(re_extra_net, cut, prompt), found


def parse_prompts(prompts, extra_data=None):
    stripped = []
    extra_data = extra_data or defaultdict(list)
    for prompt in prompts:
        text, parsed = parse_prompt(prompt)
        if not extra_data or parsed:
            extra_data = parsed
        stripped.append(text)
    return stripped, extra_data
