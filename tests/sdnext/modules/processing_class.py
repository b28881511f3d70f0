"""modules.processing_class: the job object ``p`` every generation path builds.

Keyword arguments with SDNext's defaults (the subset an extension passes or reads; the many
per-job option overrides default to None = "use opts"); any other keyword becomes an attribute,
as in SDNext. ``StableDiffusionProcessingTxt2Img`` and friends take keywords only.

Quirk kept: ``scripts``/``script_args``/``scripts_setup_complete`` start out holding
``dataclasses.Field`` objects (SDNext assigns ``field(...)`` in ``__init__``), so ``p.scripts``
is neither None nor a ScriptRunner until someone sets it, and ``setup_scripts`` never runs."""
from collections import defaultdict
from dataclasses import dataclass, field

from modules import processing_helpers, shared
from modules.logger import log


@dataclass(repr=False)
class StableDiffusionProcessing:
    def __init__(self, sd_model_checkpoint=None, sd_model=None, prompt="", negative_prompt="",  # pylint: disable=unused-argument
                 seed=-1, subseed=-1, subseed_strength=0, seed_resize_from_h=-1, seed_resize_from_w=-1,
                 batch_size=1, n_iter=1, steps=20, clip_skip=1, width=1024, height=1024,
                 sampler_index=None, sampler_name=None, hr_sampler_name=None, eta=None,
                 cfg_scale=6.0, cfg_end=1, cfg_rescale=0.0, cfg_true=0.0, cfg_adaptive=0.5, cfg_image=None,
                 styles=None, tiling=False, vae_type='Full', detailer_enabled=False,
                 samples_save=None, samples_format=None, grid_save=None, grid_format=None, return_grid=None,
                 keep_incomplete=None, extra_networks_default_multiplier=None, lora_apply_tags=None,
                 sequential_seed=None, denoising_strength=0.3, init_images=None,
                 enable_hr=False, hr_scale=2.0, hr_force=False, hr_resize_mode=0, hr_resize_context='None',
                 hr_second_pass_steps=0, hr_resize_x=0, hr_resize_y=0, hr_denoising_strength=0.0,
                 hr_upscaler=None, refiner_steps=5, refiner_start=0, refiner_prompt='', refiner_negative='',
                 outpath_samples=None, outpath_grids=None, do_not_save_samples=False, do_not_save_grid=False,
                 xyz=False, script_args=None, override_settings_restore_afterwards=True,
                 override_settings=None, network_data=None, **kwargs):
        for k, v in kwargs.items():
            setattr(self, k, v)
        self.task_args = {}
        self.extra_generation_params = {}
        self.state = ''
        self.ops = []
        self.skip = []
        self.is_control = False
        self.is_hr_pass = False
        self.is_api = False  # never set True anywhere in SDNext
        self.disable_extra_networks = False
        self.iteration = 0
        self.batch_index = 0
        self.network_data = defaultdict(list)
        if network_data is not None:
            self.network_data |= network_data
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.seed = int(seed)
        self.subseed = int(subseed)
        self.subseed_strength = subseed_strength
        self.seed_resize_from_h = seed_resize_from_h
        self.seed_resize_from_w = seed_resize_from_w
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.steps = steps
        self.clip_skip = clip_skip
        self.width = width
        self.height = height
        self.eta = eta
        self.cfg_scale = cfg_scale
        self.cfg_end = cfg_end
        self.cfg_rescale = cfg_rescale
        self.cfg_true = cfg_true
        self.cfg_adaptive = cfg_adaptive
        self.cfg_image = cfg_image
        self.styles = styles or []
        self.tiling = tiling
        self.vae_type = vae_type
        self.detailer_enabled = detailer_enabled
        self.samples_save = samples_save
        self.samples_format = samples_format
        self.grid_save = grid_save
        self.grid_format = grid_format
        self.return_grid = return_grid
        self.keep_incomplete = keep_incomplete
        self.extra_networks_default_multiplier = extra_networks_default_multiplier
        self.lora_apply_tags = lora_apply_tags
        self.sequential_seed = sequential_seed
        self.denoising_strength = denoising_strength
        self.init_images = init_images or []
        self.enable_hr = enable_hr
        self.hr_scale = hr_scale
        self.hr_force = hr_force
        self.hr_resize_mode = hr_resize_mode
        self.hr_resize_context = hr_resize_context
        self.hr_second_pass_steps = hr_second_pass_steps
        self.hr_resize_x = hr_resize_x
        self.hr_resize_y = hr_resize_y
        self.hr_upscale_to_x = hr_resize_x
        self.hr_upscale_to_y = hr_resize_y
        self.hr_denoising_strength = hr_denoising_strength
        self.hr_upscaler = hr_upscaler
        self.refiner_steps = refiner_steps
        self.refiner_start = refiner_start
        self.refiner_prompt = refiner_prompt
        self.refiner_negative = refiner_negative
        self.outpath_samples = outpath_samples
        self.outpath_grids = outpath_grids
        self.do_not_save_samples = do_not_save_samples
        self.do_not_save_grid = do_not_save_grid
        self.override_settings_restore_afterwards = override_settings_restore_afterwards
        self.sampler_name = sampler_name or processing_helpers.get_sampler_name(sampler_index, img=True)
        self.hr_sampler_name = hr_sampler_name if hr_sampler_name != 'Same as primary' else self.sampler_name
        self.override_settings = {k: v for k, v in (override_settings or {}).items() if k not in shared.restricted_opts}
        self.prompts = []
        self.negative_prompts = []
        self.all_prompts = []
        self.all_negative_prompts = []
        self.all_templates = []
        self.all_negative_templates = []
        self.seeds = []
        self.subseeds = []
        self.all_seeds = []
        self.all_subseeds = []
        self.is_using_inpainting_conditioning = False
        self.comments = {}
        self.scripts_value = field(default=None, init=False)
        self.script_args_value = field(default=None, init=False)
        self.scripts_setup_complete = field(default=False, init=False)
        self.script_args = script_args if script_args is not None else []
        self.per_script_args = {}
        self.xyz = xyz
        self.abort = False
        if sd_model_checkpoint:  # SDNext switches the model for good, right here
            from modules import sd_checkpoint, sd_models
            info = sd_checkpoint.checkpoint_aliases.get(sd_model_checkpoint)
            if info is None:
                log.error(f'Processing: model="{sd_model_checkpoint}" not found')
                self.abort = True
            else:
                shared.opts.data['sd_model_checkpoint'] = info.title
                sd_models.load_model(info)

    def __repr__(self):
        return f'{self.__class__.__name__}({self.prompt!r})'

    @property
    def sd_model(self):
        return shared.sd_model

    @property
    def scripts(self):
        return self.scripts_value

    @scripts.setter
    def scripts(self, value):
        self.scripts_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    @property
    def script_args(self):
        return self.script_args_value

    @script_args.setter
    def script_args(self, value):
        self.script_args_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    def setup_scripts(self):
        self.scripts_setup_complete = True
        self.scripts.setup_scripts()

    def comment(self, text):
        self.comments[text] = 1

    def init(self, all_prompts=None, all_seeds=None, all_subseeds=None):
        pass

    def close(self):
        self.sampler = None
        self.scripts = None


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def init(self, all_prompts=None, all_seeds=None, all_subseeds=None):
        self.width = self.width or 1024
        self.height = self.height or 1024
        if all_prompts is not None:
            self.all_prompts = all_prompts
        if all_seeds is not None:
            self.all_seeds = all_seeds
        if all_subseeds is not None:
            self.all_subseeds = all_subseeds

    def init_hr(self, scale=None, upscaler=None, force=False):  # pylint: disable=unused-argument
        scale = scale or self.hr_scale
        if self.hr_resize_x == 0 and self.hr_resize_y == 0:
            self.hr_upscale_to_x = int(self.width * scale)
            self.hr_upscale_to_y = int(self.height * scale)
        elif self.hr_resize_y == 0:
            self.hr_upscale_to_x = int(self.hr_resize_x)
            self.hr_upscale_to_y = int(self.hr_resize_x * self.height // self.width)
        elif self.hr_resize_x == 0:
            self.hr_upscale_to_x = int(self.hr_resize_y * self.width // self.height)
            self.hr_upscale_to_y = int(self.hr_resize_y)
        else:
            self.hr_upscale_to_x = int(self.hr_resize_x)
            self.hr_upscale_to_y = int(self.hr_resize_y)


class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    """Only what tells it apart for an observer: the class, and its 'img2img' op."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def init(self, all_prompts=None, all_seeds=None, all_subseeds=None):
        if self.init_images:
            self.width = self.width or self.init_images[0].width
            self.height = self.height or self.init_images[0].height
            self.ops.append('img2img')
        if all_prompts is not None:
            self.all_prompts = all_prompts
        if all_seeds is not None:
            self.all_seeds = all_seeds
        if all_subseeds is not None:
            self.all_subseeds = all_subseeds


class StableDiffusionProcessingControl(StableDiffusionProcessingImg2Img):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.is_control = True
