"""modules.modeldata: ``shared.sd_model`` / ``sd_loaded`` / ``sd_model_type`` as module properties.

In SDNext reading ``shared.sd_model`` while no model is loaded starts loading the selected
checkpoint (or, while the UI is being built, logs "Model locked"). The double does the same
with its own checkpoints (sd_models.write_checkpoint): every read while unloaded is recorded in
``model_data.requests`` ("file:function") and every load it starts in ``model_data.loads``, so
tests can assert our code never asked. Without a loadable checkpoint the read returns None."""
import os
import sys
import threading
from types import ModuleType

from modules.logger import log

# class-name fragments -> SDNext model type, in SDNext's order of checks (subset)
_MODEL_TYPES = (
    ("StableDiffusion3", 'sd3'), ("StableDiffusionXL", 'sdxl'), ("StableDiffusion", 'sd'), ("Cascade", 'sc'),
    ("Chroma", 'chroma'), ("Flux2", 'f2'), ("Flux", 'f1'), ("ZImage", 'zimage'), ("Sana", 'sana'),
    ("HunyuanVideoPipeline", 'hunyuanvideo'), ("Qwen", 'qwen'), ("Wan", 'wanai'),
)


def get_model_type(pipe):
    name = pipe.__class__.__name__
    for fragment, model_type in _MODEL_TYPES:
        if fragment in name:
            return model_type
    return name


class ModelData:
    def __init__(self):
        self.sd_model = None
        self.sd_refiner = None
        self.locked = True  # SDNext unlocks after the UI is built, just before loading the model
        self.lock = threading.Lock()
        self.requests = []  # the double: "file:function" of every read of sd_model while unloaded
        self.loads = []  # the double: "file:function" of every load such a read started

    def get_sd_model(self):
        if self.sd_model is None:
            frame = sys._getframe(3)  # pylint: disable=protected-access
            fn = f'{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}'
            self.requests.append(fn)
            if self.locked:
                log.warning(f'Model locked: fn={fn}')
                return None
            from modules import sd_checkpoint, shared
            if shared.opts.sd_model_checkpoint != 'None' and sd_checkpoint.checkpoint_aliases.get(shared.opts.sd_model_checkpoint) is not None and not self.lock.locked():
                with self.lock:
                    self.loads.append(fn)
                    from modules.sd_models import load_model
                    load_model()
            else:
                log.debug(f'Model requested: fn={fn}')
        return self.sd_model


model_data = ModelData()


class Shared(ModuleType):
    @property
    def sd_loaded(self):
        return model_data.sd_model is not None

    @property
    def sd_model(self):
        return model_data.get_sd_model()

    @sd_model.setter
    def sd_model(self, value):
        model_data.sd_model = value

    @property
    def sd_refiner(self):
        return model_data.sd_refiner

    @property
    def sd_model_type(self):
        if model_data.sd_model is None:
            return 'none'
        return get_model_type(model_data.sd_model)
