"""modules.lora.lora_common: the LoRAs applied to the current model (Network objects)."""
loaded_networks = []
