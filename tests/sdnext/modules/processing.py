"""modules.processing: ``process_images(p)``, the one entry of every SDNext generation path.

Imitated flow (SDNext modules/processing.py):
- reads ``shared.sd_model`` first (which lazily loads a model when none is loaded) and returns
  None when there is still none, or when ``p.abort`` is set; no callbacks fire then;
- applies ``p.override_settings``, floors width/height to multiples of 8, fires
  ``before_process_callback(p)``, runs the inner loop, and fires ``after_process_callback(p)``
  in ``finally`` (also when the loop raises), then restores overridden options;
- inner loop: seeds fixed and ``all_prompts``/``all_seeds`` filled (sequential seeds),
  state.begin('Process'), per batch: stop when interrupted, skip the batch when skipped, cut
  extra-network tokens from ``p.prompts``, run the pipeline (processing_diffusers); after an
  interrupt the live-preview ``state.current_image`` becomes the only sample when
  ``keep_incomplete`` (saved too), nothing otherwise; every sample gets its infotext in
  ``image.info['parameters']`` and is saved when ``samples_save`` and not ``do_not_save_samples``
  and ``outpath_samples`` is set; a grid goes first when several images and ``return_grid``
  (``index_of_first_image`` = 1) and is saved to ``outpath_grids`` with ``grid_save``; the module
  global ``processed`` is set, state.end();
- ScriptRunner hooks run when ``p.scripts`` is one (a script's ``process_images`` hook may call
  ``process_images`` again: calls nest)."""
import json

from PIL import Image

from modules import images, processing_helpers, script_callbacks, scripts_manager, shared, timer
from modules.logger import log
from modules.processing_class import (  # noqa: F401 pylint: disable=unused-import
    StableDiffusionProcessing,
    StableDiffusionProcessingControl,
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
)
from modules.processing_info import create_infotext

get_fixed_seed = processing_helpers.get_fixed_seed
get_sampler_name = processing_helpers.get_sampler_name
processed = None  # the last Processed made


class Processed:
    def __init__(self, p, images_list, seed=-1, info=None, subseed=None, all_prompts=None, all_negative_prompts=None,
                 all_seeds=None, all_subseeds=None, index_of_first_image=0, infotexts=None, comments="", binary=None, audio=None):
        self.sd_model_hash = getattr(shared.sd_model, 'sd_model_hash', '') if shared.sd_loaded else ''
        self.prompt = p.prompt if not isinstance(p.prompt, list) else p.prompt[0]
        self.negative_prompt = p.negative_prompt if not isinstance(p.negative_prompt, list) else p.negative_prompt[0]
        self.prompt, self.negative_prompt = self.prompt or '', self.negative_prompt or ''
        self.styles = p.styles
        self.bytes = binary
        self.audio = audio
        self.images = images_list
        self.width = p.width
        self.height = p.height
        self.sampler_name = p.sampler_name or ''
        self.cfg_scale = p.cfg_scale if (p.cfg_scale is not None and p.cfg_scale > -1) else None
        self.cfg_end = p.cfg_end if p.cfg_end < 1 else None
        self.cfg_image = p.cfg_image if (p.cfg_image is not None and p.cfg_image > -1) else None
        self.steps = p.steps or 0
        self.batch_size = max(1, p.batch_size)
        self.denoising_strength = p.denoising_strength
        self.detailer = p.detailer_enabled or False
        self.detailer_model = 'Detailer' if p.detailer_enabled else None
        self.seed_resize_from_w = p.seed_resize_from_w
        self.seed_resize_from_h = p.seed_resize_from_h
        self.extra_generation_params = p.extra_generation_params  # the same dict object as p's
        self.index_of_first_image = index_of_first_image
        self.job_timestamp = shared.state.job_timestamp
        self.clip_skip = p.clip_skip
        self.eta = p.eta
        seed = seed if seed != -1 else p.seed
        self.seed = int(seed[0] if isinstance(seed, list) else seed) if seed is not None else -1
        self.subseed = int(subseed[0] if isinstance(subseed, list) else subseed) if subseed is not None else -1
        self.subseed_strength = p.subseed_strength
        self.all_prompts = all_prompts or p.all_prompts or [self.prompt]
        self.all_negative_prompts = all_negative_prompts or p.all_negative_prompts or [self.negative_prompt]
        self.all_seeds = all_seeds or p.all_seeds or [self.seed]
        self.all_subseeds = all_subseeds or p.all_subseeds or [self.subseed]
        self.info = info or create_infotext(p)
        self.infotexts = infotexts or [self.info]
        self.comments = comments or ''

    def js(self):
        return json.dumps({
            "prompt": self.all_prompts[0], "all_prompts": self.all_prompts,
            "negative_prompt": self.all_negative_prompts[0], "all_negative_prompts": self.all_negative_prompts,
            "seed": self.seed, "all_seeds": self.all_seeds, "subseed": self.subseed, "all_subseeds": self.all_subseeds,
            "subseed_strength": self.subseed_strength, "width": self.width, "height": self.height,
            "sampler_name": self.sampler_name, "cfg_scale": self.cfg_scale, "cfg_end": self.cfg_end, "steps": self.steps,
            "batch_size": self.batch_size, "detailer": self.detailer, "detailer_model": self.detailer_model,
            "sd_model_hash": self.sd_model_hash, "seed_resize_from_w": self.seed_resize_from_w,
            "seed_resize_from_h": self.seed_resize_from_h, "denoising_strength": self.denoising_strength,
            "extra_generation_params": self.extra_generation_params, "index_of_first_image": self.index_of_first_image,
            "infotexts": self.infotexts, "styles": self.styles, "job_timestamp": self.job_timestamp,
            "clip_skip": self.clip_skip,
        })

    def infotext(self, p, index):
        return create_infotext(p, self.all_prompts, self.all_seeds, self.all_subseeds, comments=[],
                               position_in_batch=index % self.batch_size, iteration=index // self.batch_size)


def get_processed(*args, **kwargs):
    global processed  # pylint: disable=global-statement
    processed = Processed(*args, **kwargs)
    return processed


def _runner(p):
    return p.scripts if p.scripts is not None and isinstance(p.scripts, scripts_manager.ScriptRunner) else None


def get_opt(p, key):
    value = getattr(p, key, None)
    return value if value is not None else getattr(shared.opts, key)


def process_images(p):
    timer.process.reset()
    if shared.sd_model is None:  # a lazy model load, as in SDNext
        log.warning('Aborted: op=process model not loaded')
        return None
    if not hasattr(shared.sd_model, 'sd_checkpoint_info'):
        log.error('Aborted: op=process incomplete model')
        return None
    if p.abort:
        log.debug('Processing: aborted')
        return None
    if _runner(p):
        p.scripts.before_process(p)
    stored = {}
    for k, v in list(p.override_settings.items()):
        if getattr(shared.opts, k, None) == v:
            p.override_settings.pop(k)
    for k in p.override_settings:
        stored[k] = getattr(shared.opts, k, None)
    results = None
    try:
        for k, v in p.override_settings.items():
            setattr(shared.opts, k, v)
        if p.width is not None:
            p.width = 8 * int(p.width / 8)
        if p.height is not None:
            p.height = 8 * int(p.height / 8)
        script_callbacks.before_process_callback(p)
        timer.process.record('pre')
        results = process_images_inner(p)
    finally:
        script_callbacks.after_process_callback(p)
        if p.override_settings_restore_afterwards:
            for k, v in stored.items():
                setattr(shared.opts, k, v)
        timer.process.record('post')
    return results


def process_init(p):
    seed = get_fixed_seed(p.seed)
    subseed = get_fixed_seed(p.subseed)
    if not p.all_prompts:
        p.all_prompts = p.prompt if isinstance(p.prompt, list) else p.batch_size * p.n_iter * [p.prompt]
    if not p.all_negative_prompts:
        p.all_negative_prompts = p.negative_prompt if isinstance(p.negative_prompt, list) else p.batch_size * p.n_iter * [p.negative_prompt]
    if not p.all_seeds:
        sequential = p.sequential_seed if p.sequential_seed is not None else shared.opts.sequential_seed
        if sequential:
            p.all_seeds = [int(seed) + (x if p.subseed_strength == 0 else 0) for x in range(len(p.all_prompts))]
        else:
            p.all_seeds = [int(get_fixed_seed(p.seed)) + (i if p.subseed_strength == 0 else 0) for i in range(len(p.all_prompts))]
    if not p.all_subseeds:
        p.all_subseeds = [int(subseed) + x for x in range(len(p.all_prompts))]


def process_samples(p, samples):
    out_images, out_infotexts = [], []
    for i, image in enumerate(samples):
        p.batch_index = i
        if not shared.state.interrupted and not shared.state.skipped and _runner(p):
            pp = scripts_manager.PostprocessImageArgs(image)
            p.scripts.postprocess_image(p, pp)
            if pp.image is not None:
                image = pp.image
        info = create_infotext(p, p.prompts, p.seeds, p.subseeds, index=i)
        if get_opt(p, 'samples_save') and not p.do_not_save_samples and p.outpath_samples is not None:
            images.save_image(image, p.outpath_samples, "", p.seeds[i], p.prompts[i], get_opt(p, 'samples_format'), info=info, p=p)
        image.info["parameters"] = info
        out_infotexts.append(info)
        out_images.append(image)
    return out_images, out_infotexts


def process_images_inner(p):
    from modules.processing_diffusers import process_diffusers
    infotexts, output_images = [], []
    process_init(p)
    if _runner(p):
        p.scripts.process(p)
    jobid = shared.state.begin('Process')
    shared.state.batch_count = p.n_iter
    p.init(p.all_prompts, p.all_seeds, p.all_subseeds)
    for n in range(p.n_iter):
        shared.state.batch_no = n + 1
        p.iteration = n
        if shared.state.interrupted:
            log.debug(f'Process interrupted: {n + 1}/{p.n_iter}')
            break
        if shared.state.skipped:
            log.debug(f'Process skipped: {n + 1}/{p.n_iter}')
            shared.state.skipped = False
            continue
        p.prompts = p.all_prompts[n * p.batch_size:(n + 1) * p.batch_size]
        p.negative_prompts = p.all_negative_prompts[n * p.batch_size:(n + 1) * p.batch_size]
        p.seeds = p.all_seeds[n * p.batch_size:(n + 1) * p.batch_size]
        p.subseeds = p.all_subseeds[n * p.batch_size:(n + 1) * p.batch_size]
        if _runner(p):
            p.scripts.before_process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
        if not p.prompts:
            break
        from modules import extra_networks
        p.prompts, p.network_data = extra_networks.parse_prompts(p.prompts)
        if _runner(p):
            p.scripts.process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
        samples = None
        if _runner(p):
            results = p.scripts.process_images(p)
            if results is not None:
                samples = results.images
                for image, text in zip(results.images, results.infotexts):
                    output_images.append(image)
                    infotexts.append(text)
        if samples is None:
            samples = process_diffusers(p)
        if shared.state.interrupted:
            keep = get_opt(p, 'keep_incomplete')
            p.do_not_save_samples = not keep
            if isinstance(shared.state.current_image, Image.Image):
                samples = [shared.state.current_image]
                infotexts = [create_infotext(p, p.all_prompts, p.all_seeds, p.all_subseeds, index=0)]
            else:
                samples = []
            if not keep:
                break
        if _runner(p):
            p.scripts.postprocess_batch(p, samples, batch_number=n)
            # only with a runner: the prompts get their extra-network tokens back for the infotext
            p.prompts = p.all_prompts[n * p.batch_size:(n + 1) * p.batch_size]
            p.negative_prompts = p.all_negative_prompts[n * p.batch_size:(n + 1) * p.batch_size]
            batch_params = scripts_manager.PostprocessBatchListArgs(list(samples))
            p.scripts.postprocess_batch_list(p, batch_params, batch_number=n)
            samples = batch_params.images
        batch_images, batch_infotexts = process_samples(p, samples)
        for image, text in zip(batch_images, batch_infotexts):
            if image is not None and image not in output_images:
                output_images.append(image)
                infotexts.append(text)
        if shared.state.interrupted:
            break
    index_of_first_image = 0
    return_grid, grid_save = get_opt(p, 'return_grid'), get_opt(p, 'grid_save')
    if (return_grid or grid_save) and not p.do_not_save_grid and len(output_images) > 1 and images.check_grid_size(output_images):
        rows, cols = images.get_grid_size(output_images, p.batch_size)
        grid = images.image_grid(output_images, p.batch_size)
        grid_info = create_infotext(p, p.all_prompts, p.all_seeds, p.all_subseeds, index=0, grid=f'{rows}x{cols}')
        if return_grid:
            infotexts.insert(0, grid_info)
            output_images.insert(0, grid)
            index_of_first_image = 1
        if grid_save:
            images.save_image(grid, p.outpath_grids, "", p.all_seeds[0], p.all_prompts[0], get_opt(p, 'grid_format'), info=grid_info, p=p, grid=True)
    results = get_processed(p, images_list=output_images, seed=p.all_seeds[0], info=infotexts[0] if infotexts else '',
                            subseed=p.all_subseeds[0], index_of_first_image=index_of_first_image, infotexts=infotexts)
    if _runner(p) and not (shared.state.interrupted or shared.state.skipped):
        p.scripts.postprocess(p, results)
    p.ops = list(set(p.ops))
    log.info(f'Processed: images={len(output_images)} ops={p.ops}')
    shared.state.end(jobid)
    return results
