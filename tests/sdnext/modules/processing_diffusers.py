"""modules.processing_diffusers: one batch through the pipeline, SDNext's way.

``process_base`` wraps its work in state.begin('Base') and the pipeline call in
state.begin('Inference') (each resets ``interrupted``/``skipped``: an interrupt requested just
before is lost), activates the prompt's extra networks, and catches what the pipeline raises:
AssertionError (the step callback's "Interrupted...") is logged at info; ValueError and
RuntimeError are pipeline errors: ``state.interrupted = True``, logged as errors, displayed,
never raised. Exceptions from ``sd_model.postprocess`` are outside that catch.
``process_hires`` upscales (hr_resize_mode > 0 and an upscaler other than 'None') and runs a
second pass (latent upscaler or hr_force, with strength > 0)."""
from modules import errors, extra_networks, shared
from modules.logger import log
from modules.lora import lora_common


def _loras():
    return tuple((n.name, n.te_multiplier, tuple(n.unet_multiplier) if isinstance(n.unet_multiplier, list) else n.unet_multiplier)
                 for n in lora_common.loaded_networks)


def _run(p, args, step):
    try:
        taskid = shared.state.begin('Inference')
        output = shared.sd_model(**args)
        shared.state.end(taskid)
        return output
    except AssertionError as e:
        log.info(e)
    except (ValueError, RuntimeError) as e:
        shared.state.interrupted = True
        log.error(f'Processing: step={step} args={ {k: v for k, v in args.items() if k != "init_images"} } {e}')
        errors.display(e, 'Processing')
    return None


def process_base(p):
    jobid = shared.state.begin('Base')
    p.ops.append('txt2img')
    p.prompts, p.network_data = extra_networks.parse_prompts(p.prompts, p.network_data)
    extra_networks.activate(p)
    shared.state.update('Base', p.steps, 1)
    output = _run(p, dict(prompts=p.prompts, negative_prompts=p.negative_prompts, seeds=p.seeds, width=p.width,
                          height=p.height, steps=p.steps, loras=_loras()), 'base')
    output = shared.sd_model.postprocess(p, output)
    shared.state.end(jobid)
    shared.state.nextjob()
    return output


def process_hires(p, output):
    if output is None or not p.enable_hr:
        return output
    jobid = shared.state.begin('Hires')
    p.is_hr_pass = True
    p.init_hr(p.hr_scale, p.hr_upscaler, force=p.hr_force)
    if p.hr_resize_mode > 0 and (p.hr_upscaler != 'None' or p.hr_resize_mode == 5):
        p.ops.append('upscale')
        output = [image.resize((p.hr_upscale_to_x, p.hr_upscale_to_y)) for image in output]
    strength = p.hr_denoising_strength if p.hr_denoising_strength > 0 else p.denoising_strength
    if p.hr_upscaler is not None and (p.hr_upscaler.lower().startswith('latent') or p.hr_force) and strength > 0:
        p.ops.append('hires')
        p.hr_force = True
    if p.hr_force and strength == 0:
        log.warning('Hires skip: denoising=0')
        p.hr_force = False
    if p.hr_force:
        size = (output[0].width, output[0].height) if output else (p.width, p.height)
        refined = _run(p, dict(prompts=p.prompts, negative_prompts=p.negative_prompts, seeds=p.seeds, width=size[0], height=size[1],
                               steps=p.hr_second_pass_steps or p.steps, strength=strength, init_images=output), 'hires')
        output = refined
    shared.state.end(jobid)
    return output


def process_diffusers(p):
    if shared.state.interrupted or shared.state.skipped:
        return []
    if not p.prompts:
        p.prompts = p.all_prompts[p.iteration * p.batch_size:(p.iteration + 1) * p.batch_size]
    if not p.negative_prompts:
        p.negative_prompts = p.all_negative_prompts[p.iteration * p.batch_size:(p.iteration + 1) * p.batch_size]
    output = process_base(p)
    if shared.state.interrupted or shared.state.skipped:
        return []
    output = process_hires(p, output)
    if shared.state.interrupted or shared.state.skipped:
        return []
    extra_networks.deactivate(p)
    return output or []
