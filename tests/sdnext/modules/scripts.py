"""modules.scripts: A1111-compatible re-export of scripts_manager (``from modules import scripts``)."""
from modules import scripts_manager
from modules.scripts_manager import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import

scripts_txt2img = None
scripts_img2img = None
scripts_control = None
scripts_current = None


def register_runners():
    global scripts_txt2img, scripts_img2img, scripts_control, scripts_current  # pylint: disable=global-statement
    scripts_txt2img = scripts_manager.scripts_txt2img
    scripts_img2img = scripts_manager.scripts_img2img
    scripts_control = scripts_manager.scripts_control
    scripts_current = scripts_manager.scripts_current
