"""modules.processing_info: create_infotext, the text SDNext stores with every image.

Keys in SDNext's order (the subset a txt2img job produces), then ``p.extra_generation_params``
(``LoRA networks`` and friends); None values, numbers <= -1, empty strings and '0x0' are
dropped, lists joined with ', ', values quoted by infotext.quote. Returns '' when the model has
no ``sd_checkpoint_info`` (reading ``shared.sd_model`` here would load one, as in SDNext)."""
from modules import shared
from modules.infotext import quote
from modules.logger import log

git_commit = '058a7f0c'


def create_infotext(p, all_prompts=None, all_seeds=None, all_subseeds=None, comments=None, iteration=0,
                    position_in_batch=0, index=None, all_negative_prompts=None, grid=None):
    if p is None:
        log.warning('Processing info: no data')
        return ''
    if not hasattr(shared.sd_model, 'sd_checkpoint_info'):
        return ''
    if index is None:
        index = position_in_batch + iteration * p.batch_size
    all_prompts = all_prompts if all_prompts is not None else (p.all_prompts or [p.prompt])
    all_negative_prompts = all_negative_prompts if all_negative_prompts is not None else (p.all_negative_prompts or [p.negative_prompt])
    all_seeds = all_seeds if all_seeds is not None else (p.all_seeds or [p.seed])
    all_subseeds = all_subseeds if all_subseeds is not None else (p.all_subseeds or [p.subseed])
    while len(all_prompts) <= index:
        all_prompts.append(p.prompt)
    while len(all_negative_prompts) <= index:
        all_negative_prompts.append(p.negative_prompt)
    while len(all_seeds) <= index:
        all_seeds.append(int(p.seed))
    while len(all_subseeds) <= index:
        all_subseeds.append(int(p.subseed))
    model = shared.sd_model
    ops = sorted(set(p.ops))
    args = {
        "Steps": p.steps,
        "Size": f"{p.width}x{p.height}",
        "Sampler": p.sampler_name if p.sampler_name != 'Default' else None,
        "Seed": all_seeds[index],
        "CFG scale": p.cfg_scale if p.cfg_scale > -1 else None,
        "CFG end": p.cfg_end if p.cfg_end < 1.0 else None,
        "CLiP-skip": p.clip_skip if p.clip_skip > 1 else None,
        "Batch": f'{p.n_iter}x{p.batch_size}' if p.n_iter > 1 or p.batch_size > 1 else None,
        "Styles": "; ".join(p.styles) if p.styles else None,
        "App": 'SD.Next',
        "Version": git_commit,
        "Comment": ', '.join(comments) if isinstance(comments, list) else None,
        "Pipeline": model.__class__.__name__,
        "Operations": '; '.join(ops) if p.ops else 'none',
    }
    if shared.opts.add_model_name_to_info and getattr(model, 'sd_checkpoint_info', None) is not None:
        args["Model"] = model.sd_checkpoint_info.model_name.replace(',', '').replace(':', '')
    if shared.opts.add_model_hash_to_info and getattr(model, 'sd_model_hash', None) is not None:
        args["Model hash"] = model.sd_model_hash
    if grid is None and (p.n_iter > 1 or p.batch_size > 1) and index >= 0:
        args['Index'] = f'{p.iteration + 1}x{index + 1}'
    if grid is not None:
        args['Grid'] = grid
    if 'hires' in p.ops or 'upscale' in p.ops:
        args["Refine"] = p.enable_hr
        if p.hr_resize_mode > 0 and p.hr_upscaler != 'None':
            args["HiRes mode"] = p.hr_resize_mode
            args["Hires upscaler"] = p.hr_upscaler
            args["Hires scale"] = p.hr_scale
            args["Hires size"] = f"{p.hr_upscale_to_x}x{p.hr_upscale_to_y}"
        if p.hr_force or 'Latent' in (p.hr_upscaler or ''):
            args["Hires force"] = p.hr_force
            args["Hires steps"] = p.hr_second_pass_steps
            args["Hires strength"] = p.hr_denoising_strength
    args.update(p.extra_generation_params)
    for k, v in list(args.items()):
        if v is None:
            del args[k]
        elif type(v) in (int, float) and v <= -1:
            del args[k]
        elif isinstance(v, list):
            if v:
                args[k] = ', '.join(str(x) for x in v)
            else:
                del args[k]
        elif isinstance(v, str) and (not v or v == '0x0'):
            del args[k]
    params_text = ", ".join(k if k == v else f'{k}: {quote(v)}' for k, v in args.items())
    negative = all_negative_prompts[index] or ''
    return f"{all_prompts[index]}\nNegative prompt: {negative}\n{params_text}".strip()
