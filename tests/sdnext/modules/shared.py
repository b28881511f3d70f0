"""modules.shared: SDNext's global state, built from the parsed arguments at import time.

``tests/sdnext.start`` configures ``cmd_args`` (and the config file in the data folder) and
then imports this module, as SDNext's launcher does. The option templates here are the core
options an extension reads, with SDNext's defaults, labels, components and sections."""
import os
import sys

import gradio as gr

from modules import cmd_args, errors, paths, shared_state  # noqa: F401 pylint: disable=unused-import
from modules.json_helpers import readfile  # noqa: F401 pylint: disable=unused-import
from modules.logger import log
from modules.options import OptionInfo, options_section

log.debug('Initializing: shared module')

demo = None
api = None
url = 'https://github.com/vladmandic/sdnext'
cmd_opts = cmd_args.parse_args()
hide_dirs = {"visible": not cmd_opts.hide_ui_dir_config}
tab_names = []
extra_networks = []
settings_components = {}
restricted_opts = {
    "samples_filename_pattern", "directories_filename_pattern", "outdir_samples",
    "outdir_txt2img_samples", "outdir_img2img_samples", "outdir_extras_samples",
    "outdir_control_samples", "outdir_grids", "outdir_txt2img_grids", "outdir_save",
    "outdir_init_images",
}
max_workers = 12
resize_modes = ["None", "Fixed", "Crop", "Fill", "Outpaint", "Context aware"]
state = shared_state.State()
models_path = paths.models_path
script_path = paths.script_path
data_path = paths.data_path
restart_requests = []  # the double: every restart_server() call


def list_checkpoint_titles():
    return []


def refresh_checkpoints():
    return []


def create_settings():
    """The core options an extension may read or that SDNext's own code reads around us."""
    templates = {}
    templates.update(options_section(('sd', "Model Loading"), {
        "sd_model_checkpoint": OptionInfo("model.safetensors", "Base model", gr.Dropdown, lambda: {"choices": list_checkpoint_titles()}, refresh=refresh_checkpoints),
        "latent_history": OptionInfo(20, "Latent history size", gr.Slider, {"minimum": 0, "maximum": 100, "step": 1}),
    }))
    templates.update(options_section(('system-paths', "System Paths"), {
        "models_dir": OptionInfo('models', "Root model folder", folder=True),
        "ckpt_dir": OptionInfo(os.path.join(paths.models_path, 'Stable-diffusion'), "Folder with stable diffusion models", folder=True),
        "lora_dir": OptionInfo(os.path.join(paths.models_path, 'Lora'), "Folder with LoRA network(s)", folder=True),
    }))
    templates.update(options_section(('saving-images', "Image Options"), {
        "samples_save": OptionInfo(True, "Save all generated images"),
        "keep_incomplete": OptionInfo(True, "Save interrupted images"),
        "samples_format": OptionInfo('jpg', 'File format', gr.Dropdown, {"choices": ["jpg", "png", "webp", "tiff", "jp2", "jxl"]}),
        "jpeg_quality": OptionInfo(90, "Image quality", gr.Slider, {"minimum": 1, "maximum": 100, "step": 1}),
        "img_max_size_mp": OptionInfo(1000, "Maximum image size (MP)", gr.Slider, {"minimum": 100, "maximum": 2000, "step": 1}),
        "grid_save": OptionInfo(True, "Save all generated image grids"),
        "grid_format": OptionInfo('jpg', 'File format', gr.Dropdown, {"choices": ["jpg", "png", "webp", "tiff", "jp2", "jxl"]}),
        "n_rows": OptionInfo(-1, "Grid max rows count", gr.Slider, {"minimum": -1, "maximum": 16, "step": 1}),
        "save_images_add_number": OptionInfo(True, "Numbered filenames", component_args=hide_dirs),
        "samples_filename_pattern": OptionInfo("[seq]-[date]-[model_name]", "Images filename pattern", component_args=hide_dirs),
        "directories_max_prompt_words": OptionInfo(8, "Max words", gr.Slider, {"minimum": 1, "maximum": 99, "step": 1, **hide_dirs}),
    }))
    templates.update(options_section(('generation', "Generation"), {
        "sequential_seed": OptionInfo(True, "Batch mode uses sequential seeds"),
        "return_grid": OptionInfo(True, "Show grid in results"),
    }))
    templates.update(options_section(('saving-paths', "Image Paths"), {
        "outdir_samples": OptionInfo("", "Base images folder", component_args=hide_dirs, folder=True),
        "outdir_txt2img_samples": OptionInfo("outputs/text", 'Folder for text generate', component_args=hide_dirs, folder=True),
        "outdir_img2img_samples": OptionInfo("outputs/image", 'Folder for image generate', component_args=hide_dirs, folder=True),
        "outdir_control_samples": OptionInfo("outputs/control", 'Folder for control generate', component_args=hide_dirs, folder=True),
        "outdir_extras_samples": OptionInfo("outputs/extras", 'Folder for processed images', component_args=hide_dirs, folder=True),
        "outdir_save": OptionInfo("outputs/save", "Folder for manually saved images", component_args=hide_dirs, folder=True),
        "outdir_video": OptionInfo("outputs/video", "Folder for videos", component_args=hide_dirs, folder=True),
        "outdir_init_images": OptionInfo("outputs/inputs", "Folder for init images", component_args=hide_dirs, folder=True),
        "outdir_grids": OptionInfo("", "Base grids folder", component_args=hide_dirs, folder=True),
        "outdir_txt2img_grids": OptionInfo("outputs/grids", 'Folder for txt2img grids', component_args=hide_dirs, folder=True),
    }))
    templates.update(options_section(('image-metadata', "Image Metadata"), {
        "image_metadata": OptionInfo(True, "Save metadata in image"),
        "save_txt": OptionInfo(False, "Save metadata to text file"),
    }))
    templates.update(options_section(('ui', "User Interface"), {
        "theme_type": OptionInfo("Modern", "Theme type", gr.Radio, {"choices": ["Modern", "Standard", "None"]}),
        "theme_style": OptionInfo("Auto", "Theme mode", gr.Radio, {"choices": ["Auto", "Dark", "Light"]}),
        "quicksettings_list": OptionInfo(["sd_model_checkpoint"], "Quicksettings list", gr.Dropdown, lambda: {"multiselect": True, "choices": list(templates.keys())}),
        "subpath": OptionInfo("", "Mount URL subpath"),
    }))
    templates.update(options_section(('huggingface', "Huggingface"), {
        "offline_mode": OptionInfo(False, 'Force offline mode', gr.Checkbox),
        "civitai_token": OptionInfo('', 'CivitAI token', gr.Textbox, {"lines": 2, "visible": False}, secret=True, env_var='CIVITAI_TOKEN'),
    }))
    templates.update(options_section(('extra_networks', "Networks"), {
        "extra_networks_default_multiplier": OptionInfo(1.0, "Default strength", gr.Slider, {"minimum": 0.0, "maximum": 2.0, "step": 0.01}),
        "lora_apply_tags": OptionInfo(0, "LoRA auto-apply tags", gr.Slider, {"minimum": -1, "maximum": 32, "step": 1}),
        "lora_add_hashes_to_infotext": OptionInfo(False, "LoRA add hash info to metadata"),
    }))
    templates.update(options_section(('extensions', "Extensions"), {
        "disable_all_extensions": OptionInfo("none", "Disable all extensions", gr.Radio, {"choices": ["none", "user", "all"]}),
    }))
    templates.update(options_section(("hidden_options", "Hidden options"), {
        "disabled_extensions": OptionInfo([], "Disable these extensions", gr.Textbox, {"visible": False}),
    }))
    return templates




class UpscalerData:
    """One entry of ``sd_upscalers`` (SDNext's modules/upscaler.py): what the UI lists by name."""

    def __init__(self, name, path=None, upscaler=None, scale=4, model=None):
        self.name = name
        self.data_path = path
        self.scaler = upscaler
        self.scale = scale
        self.model = model
        self.custom = False


# filled by modelloader.load_upscalers() at startup in SDNext: the built-in ones, no downloads
sd_upscalers = [UpscalerData(name) for name in (
    "None", "Resize Nearest", "Resize Lanczos", "Resize Bicubic", "Resize Bilinear",
    "Latent Nearest", "Latent Nearest exact", "Latent Area", "Latent Bilinear", "Latent Bicubic",
    "ESRGAN 4x Ultrasharp", "RealESRGAN 4x+",
)]


log.debug('Initializing: settings')
options_templates = create_settings()
from modules.options_handler import Options  # noqa: E402 pylint: disable=wrong-import-position

opts = Options(options_templates, restricted=restricted_opts, filename=cmd_opts.config, secrets=cmd_opts.secrets)
cmd_opts = cmd_args.settings_args(opts, cmd_opts)


def restart_server(restart=True):
    restart_requests.append(restart)
    log.info('Server will restart' if restart else 'Server shutdown requested')


from modules.modeldata import Shared  # noqa: E402 pylint: disable=wrong-import-position

sys.modules[__name__].__class__ = Shared
