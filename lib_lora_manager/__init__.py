"""LoRA Manager: a library index, composer and history for SDNext's LoRAs.

Importing the package is cheap on purpose (SDNext's startup budget): heavy modules
(gradio UI, SQLAlchemy, torch) are imported by the modules that need them.
"""

__version__ = "0.1.0"
