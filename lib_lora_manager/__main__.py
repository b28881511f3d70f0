"""Entry point for python -m lib_lora_manager: the CLI, with the standalone host for ``serve``."""

from lib_lora_manager.cli import main


def serve(args) -> int:
    from lib_lora_manager.hosts.standalone import serve as serve_standalone  # fastapi and gradio: only for serve

    return serve_standalone(args)


raise SystemExit(main(serve=serve))
