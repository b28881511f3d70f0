"""modules.script_callbacks: SDNext's callback registry.

Same keys as SDNext's ``callback_map`` (no ``callbacks_extra_noise``, so ``on_extra_noise``
raises KeyError); registration functions take the callback only (no A1111 ``name=``);
every fire helper catches an exception from a callback, displays it (logged as an error and
kept in ``errors.displayed``) and goes on with the next one. ``on_cfg_*`` register but nothing
fires them. before_ui/after_ui/script_unloaded run in reverse registration order."""
import os
import sys
import time
from collections import namedtuple

from modules import errors


def report_exception(e, c, job):
    errors.display(e, f'Executing callback: {c.script} {job}')


class ImageSaveParams:
    def __init__(self, image, p, filename, pnginfo):
        self.image = image
        self.p = p
        self.filename = filename
        self.pnginfo = pnginfo


class ImageGridLoopParams:
    def __init__(self, imgs, cols, rows):
        self.imgs = imgs
        self.cols = cols
        self.rows = rows


ScriptCallback = namedtuple("ScriptCallback", ["script", "callback"])
callback_map = dict(
    callbacks_app_started=[],
    callbacks_before_process=[],
    callbacks_after_process=[],
    callbacks_model_loaded=[],
    callbacks_ui_settings=[],
    callbacks_ui_tabs=[],
    callbacks_before_image_saved=[],
    callbacks_image_saved=[],
    callbacks_image_save_btn=[],
    callbacks_cfg_denoiser=[],
    callbacks_cfg_denoised=[],
    callbacks_cfg_after_cfg=[],
    callbacks_before_component=[],
    callbacks_after_component=[],
    callbacks_image_grid=[],
    callbacks_infotext_pasted=[],
    callbacks_script_unloaded=[],
    callbacks_before_ui=[],
    callbacks_after_ui=[],
    callbacks_on_reload=[],
)

timers = {}


def timer(t0, script, callback):
    k = f'{os.path.basename(script)}:{callback}'
    timers[k] = timers.get(k, 0) + time.time() - t0


def clear_callbacks():
    for callback_list in callback_map.values():
        callback_list.clear()


def _fire(key, job, *args, reverse=False, collect=False, **kwargs):
    res = []
    callbacks = callback_map[key]
    for c in (reversed(callbacks) if reverse else list(callbacks)):
        try:
            t0 = time.time()
            out = c.callback(*args, **kwargs)
            if collect:
                res += out or []
            timer(t0, c.script, job)
        except Exception as e:  # pylint: disable=broad-except
            report_exception(e, c, job)
    return res


def app_started_callback(demo, app):
    _fire('callbacks_app_started', 'app_started_callback', demo, app)


def before_process_callback(p):
    _fire('callbacks_before_process', 'before_process_callback', p)


def after_process_callback(p):
    _fire('callbacks_after_process', 'after_process_callback', p)


def app_reload_callback():
    _fire('callbacks_on_reload', 'callbacks_on_reload')


def model_loaded_callback(sd_model):
    _fire('callbacks_model_loaded', 'model_loaded_callback', sd_model)


def ui_settings_callback():
    _fire('callbacks_ui_settings', 'ui_settings_callback')


def ui_tabs_callback():
    """The tabs of every on_ui_tabs callback: a list of (component, title, elem_id)."""
    return _fire('callbacks_ui_tabs', 'ui_tabs_callback', collect=True)


def before_image_saved_callback(params):
    _fire('callbacks_before_image_saved', 'before_image_saved_callback', params)


def image_saved_callback(params):
    _fire('callbacks_image_saved', 'image_saved_callback', params)


def image_save_btn_callback(filename):
    _fire('callbacks_image_save_btn', 'image_save_btn_callback', filename)


def before_component_callback(component, **kwargs):
    _fire('callbacks_before_component', 'before_component_callback', component, **kwargs)


def after_component_callback(component, **kwargs):
    _fire('callbacks_after_component', 'after_component_callback', component, **kwargs)


def image_grid_callback(params):
    _fire('callbacks_image_grid', 'image_grid', params)


def infotext_pasted_callback(infotext, params):
    _fire('callbacks_infotext_pasted', 'infotext_pasted', infotext, params)


def script_unloaded_callback():
    _fire('callbacks_script_unloaded', 'script_unloaded', reverse=True)


def before_ui_callback():
    _fire('callbacks_before_ui', 'before_ui', reverse=True)


def after_ui_callback():
    _fire('callbacks_after_ui', 'after_ui', reverse=True)


def add_callback(callbacks, fun):
    filename = sys._getframe().f_back.f_back.f_code.co_filename  # pylint: disable=protected-access
    callbacks.append(ScriptCallback(filename, fun))


def remove_current_script_callbacks():
    filename = sys._getframe().f_back.f_back.f_code.co_filename  # pylint: disable=protected-access
    for callback_list in callback_map.values():
        for callback_to_remove in [cb for cb in callback_list if cb.script == filename]:
            callback_list.remove(callback_to_remove)


def remove_callbacks_for_function(callback_func):
    for callback_list in callback_map.values():
        for callback_to_remove in [cb for cb in callback_list if cb.callback == callback_func]:
            callback_list.remove(callback_to_remove)


def on_app_started(callback):
    add_callback(callback_map['callbacks_app_started'], callback)


def on_before_process(callback):
    add_callback(callback_map['callbacks_before_process'], callback)


def on_after_process(callback):
    add_callback(callback_map['callbacks_after_process'], callback)


def on_before_reload(callback):
    add_callback(callback_map['callbacks_on_reload'], callback)


def on_model_loaded(callback):
    add_callback(callback_map['callbacks_model_loaded'], callback)


def on_ui_settings(callback):
    add_callback(callback_map['callbacks_ui_settings'], callback)


def on_ui_tabs(callback):
    add_callback(callback_map['callbacks_ui_tabs'], callback)


def on_before_image_saved(callback):
    add_callback(callback_map['callbacks_before_image_saved'], callback)


def on_image_saved(callback):
    add_callback(callback_map['callbacks_image_saved'], callback)


def on_image_save_btn(callback):
    add_callback(callback_map['callbacks_image_save_btn'], callback)


def on_extra_noise(callback):
    add_callback(callback_map['callbacks_extra_noise'], callback)  # KeyError, as in SDNext


def on_cfg_denoiser(callback):
    add_callback(callback_map['callbacks_cfg_denoiser'], callback)


def on_cfg_denoised(callback):
    add_callback(callback_map['callbacks_cfg_denoised'], callback)


def on_cfg_after_cfg(callback):
    add_callback(callback_map['callbacks_cfg_after_cfg'], callback)


def on_before_component(callback):
    add_callback(callback_map['callbacks_before_component'], callback)


def on_after_component(callback):
    add_callback(callback_map['callbacks_after_component'], callback)


def on_image_grid(callback):
    add_callback(callback_map['callbacks_image_grid'], callback)


def on_infotext_pasted(callback):
    add_callback(callback_map['callbacks_infotext_pasted'], callback)


def on_script_unloaded(callback):
    add_callback(callback_map['callbacks_script_unloaded'], callback)


def on_before_ui(callback):
    add_callback(callback_map['callbacks_before_ui'], callback)


def on_after_ui(callback):
    add_callback(callback_map['callbacks_after_ui'], callback)
