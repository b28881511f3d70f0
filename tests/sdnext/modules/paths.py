"""modules.paths: SDNext's folders, from the parsed arguments (see cmd_args.configure)."""
import os

from modules.cmd_args import parse_args
from modules.logger import log

cli = parse_args()
modules_path = os.path.dirname(os.path.realpath(__file__))
script_path = os.path.dirname(modules_path)  # the SDNext root: the folder holding modules/
data_path = cli.data_dir
models_config = cli.models_dir or 'models'
models_path = models_config if os.path.isabs(models_config) else os.path.join(data_path, models_config)
params_path = os.path.join(data_path, "params.txt")
extensions_dir = cli.extensions_dir or os.path.join(data_path, "extensions")
extensions_builtin_dir = "extensions-builtin"
reference_path = os.path.join('models', 'Reference')
paths = {}


def create_path(folder):
    if folder is None or folder == '':
        return
    if os.path.exists(folder):
        return
    try:
        os.makedirs(folder, exist_ok=True)
        log.info(f'Create: folder="{folder}"')
    except Exception as e:  # pylint: disable=broad-except
        log.error(f'Create failed: folder="{folder}" {e}')


def resolve_output_path(base_path: str, specific_path: str) -> str:
    """An absolute specific path wins; a relative one is joined to the base when there is one."""
    if not specific_path:
        return base_path or ''
    if os.path.isabs(specific_path):
        return specific_path
    if base_path:
        return os.path.normpath(os.path.join(base_path, specific_path))
    return specific_path
