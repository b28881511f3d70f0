"""modules.sd_models: loading a checkpoint, and the double's stand-in for a diffusers pipeline.

``DoublePipeline`` is what ``shared.sd_model`` holds once a model is loaded. Its class is named
like the diffusers pipeline of the model type (``StableDiffusionXLPipeline`` for 'sdxl'...), so
``shared.sd_model_type`` is derived from the class name as in SDNext. A call runs ``steps``
steps, each sleeping ``step_time`` seconds and reporting to ``shared.state`` the way SDNext's
step callback does (``sampling_step``, ``current_latent``; AssertionError('Interrupted...') when
interrupted or skipped), and returns small real PIL images whose pixels depend on the prompt
(without its extra-network tokens), negative prompt, seed, size and the loaded LoRAs' weights.

Knobs for tests: ``step_time``; ``failure`` (an exception raised inside the pipeline call at
step ``fail_at_step``: ValueError/RuntimeError are what SDNext swallows as pipeline errors);
``crash`` (an exception raised from ``postprocess``, outside SDNext's catch, so it propagates out
of ``process_images``). ``calls`` counts pipeline calls."""
import hashlib
import os
import time

from PIL import Image

from modules import script_callbacks, sd_checkpoint, shared
from modules.logger import log

PIPELINE_CLASSES = {
    'sd': 'StableDiffusionPipeline', 'sdxl': 'StableDiffusionXLPipeline', 'sd3': 'StableDiffusion3Pipeline',
    'f1': 'FluxPipeline', 'f2': 'Flux2Pipeline', 'sc': 'StableCascadeCombinedPipeline', 'chroma': 'ChromaPipeline',
    'qwen': 'QwenImagePipeline', 'zimage': 'ZImagePipeline', 'wanai': 'WanPipeline',
    'hunyuanvideo': 'HunyuanVideoPipeline', 'sana': 'SanaPipeline',
}


def fake_image(width, height, *parts):
    """A width x height RGB image: an 8x8 pattern drawn from a hash of ``parts``, enlarged."""
    seed = "|".join(str(x) for x in parts).encode()
    data = b"".join(hashlib.sha256(seed + bytes([i])).digest() for i in range(6))  # 192 bytes
    return Image.frombytes('RGB', (8, 8), data).resize((max(8, int(width)), max(8, int(height))), Image.Resampling.NEAREST)


class DoublePipeline:
    step_time = 0.0
    failure = None
    fail_at_step = 0
    crash = None

    def __init__(self):
        self.sd_checkpoint_info = None
        self.sd_model_hash = None
        self.calls = 0

    def __call__(self, prompts, negative_prompts, seeds, width, height, steps, loras=(), strength=None, init_images=None):
        from modules import shared as s
        self.calls += 1
        if init_images:
            images = [fake_image(width, height, "refined", i.resize((8, 8)).tobytes(), strength, seed) for i, seed in zip(init_images, seeds)]
        else:
            images = [fake_image(width, height, prompt, negative, seed, loras) for prompt, negative, seed in zip(prompts, negative_prompts, seeds)]
        for step in range(steps):
            if self.step_time:
                time.sleep(self.step_time)
            if self.failure is not None and step == self.fail_at_step:
                raise self.failure
            s.state.current_latent = images
            if s.state.sampling_steps == 0:
                s.state.sampling_steps = steps
            s.state.step()
            if s.state.interrupted or s.state.skipped:
                raise AssertionError('Interrupted...')
            while s.state.paused:
                if s.state.interrupted or s.state.skipped:
                    raise AssertionError('Interrupted...')
                time.sleep(0.05)
        return images

    def postprocess(self, p, output):  # pylint: disable=unused-argument
        if self.crash is not None:
            raise self.crash
        return output


def pipeline_class(model_type):
    name = PIPELINE_CLASSES.get(model_type, model_type)
    return type(name, (DoublePipeline,), {})


def write_checkpoint(name, model_type='sdxl'):
    """A small real .safetensors file in ckpt_dir (no tensors, a modelspec header)."""
    import json
    path = os.path.join(shared.opts.ckpt_dir, f"{name}.safetensors")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    header = json.dumps({"__metadata__": {"modelspec.architecture": model_type, "name": name}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header)
    info = sd_checkpoint.CheckpointInfo(path)
    info.register()
    info.model_type = model_type
    return info


def load_model(checkpoint_info=None, op='model'):  # pylint: disable=unused-argument
    """Load the given (or the selected) checkpoint into shared.sd_model; returns it or None."""
    from modules.modeldata import model_data
    info = checkpoint_info or sd_checkpoint.checkpoint_aliases.get(shared.opts.sd_model_checkpoint)
    if info is None:
        log.error(f'Load model: checkpoint="{shared.opts.sd_model_checkpoint}" not found')
        return None
    model = pipeline_class(getattr(info, 'model_type', 'sd'))()
    model.sd_checkpoint_info = info
    model.sd_model_hash = info.calculate_shorthash()
    model_data.sd_model = model
    shared.opts.data['sd_model_checkpoint'] = info.title
    log.info(f'Load model: name="{info.title}" type={shared.sd_model_type}')
    script_callbacks.model_loaded_callback(model)
    return model


def unload_model_weights(op='model'):  # pylint: disable=unused-argument
    from modules.modeldata import model_data
    model_data.sd_model = None


def reload_model_weights(op='model'):
    from modules.modeldata import model_data
    if model_data.sd_model is not None:
        return model_data.sd_model
    return load_model(op=op)
