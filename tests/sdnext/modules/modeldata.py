"""modules.modeldata: ``shared.sd_model`` / ``sd_loaded`` / ``sd_model_type`` as module properties.

In SDNext reading ``shared.sd_model`` while no model is loaded starts loading one (or, while
the UI is being built, logs "Model locked"). The double loads nothing: it records the read in
``model_data.requests`` (so tests can assert our code never asked) and returns None."""
import os
import sys
import threading
from types import ModuleType

from modules.logger import log


class ModelData:
    def __init__(self):
        self.sd_model = None
        self.sd_refiner = None
        self.locked = True  # SDNext unlocks after the UI is built, just before loading the model
        self.lock = threading.Lock()
        self.requests = []  # the double: "file:function" of every read of sd_model while unloaded

    def get_sd_model(self):
        if self.sd_model is None:
            frame = sys._getframe(3)  # pylint: disable=protected-access
            fn = f'{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}'
            self.requests.append(fn)
            if self.locked:
                log.warning(f'Model locked: fn={fn}')
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
        return getattr(model_data.sd_model, 'model_type', 'sd')
