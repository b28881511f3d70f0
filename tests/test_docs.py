"""The README documents every setting, CLI command and REST route that exists."""

from __future__ import annotations

from pathlib import Path

from lib_lora_manager import api, cli, settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme():
    for setting in settings.SETTINGS:
        assert f"`{setting.key}`" in README, setting.key


def test_every_cli_command_is_in_the_readme():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for command in commands:
        assert f"`{command}" in README, command


def test_every_rest_route_is_in_the_readme():
    for path, _endpoint, methods in api.routes(lambda: None) + api.job_routes(lambda: None, lambda: None):
        documented = path.replace("{lora_id}", "{id}")
        short = documented.rsplit("/", 1)[-1]
        assert documented in README or f"/{short}`" in README, (methods, path)
