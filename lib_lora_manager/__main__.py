"""Entry point for python -m lib_lora_manager."""
from lib_lora_manager.cli import main

raise SystemExit(main())
