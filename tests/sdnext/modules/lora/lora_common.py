"""modules.lora.lora_common: the LoRAs applied to the current model (Network objects)."""
loaded_networks = []
extra_network_lora = None  # the registered ExtraNetworkLora (extra_networks.register_default_extra_networks)
