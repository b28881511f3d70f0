"""modules.call_queue: the one GPU lock and the wrappers SDNext puts around UI handlers.

``queue_lock`` is a plain, non-reentrant threading.Lock shared by the UI, the API and model
switching: calling a queued function from inside another deadlocks. The wrappers never raise:
an exception becomes ``extra_outputs + [<div class='error'>...]`` (SDNext appends to the very
list passed as extra_outputs, so it grows on every failure, imitated here)."""
import html
import threading
import time

from modules import errors, progress, shared
from modules.logger import log

queue_lock = threading.Lock()


def get_lock():
    return queue_lock


def wrap_queued_call(func):
    def f(*args, **kwargs):
        with get_lock():
            res = func(*args, **kwargs)
        return res
    return f


def _is_task_id(args):
    return len(args) > 0 and type(args[0]) == str and args[0][0:5] == "task(" and args[0][-1] == ")"  # pylint: disable=unidiomatic-typecheck


def wrap_gradio_gpu_call(func, extra_outputs=None, name=None):
    name = name or func.__name__

    def f(*args, **kwargs):
        if _is_task_id(args):
            id_task = args[0]
            progress.add_task_to_queue(id_task)
        else:
            id_task = None
        with get_lock():
            progress.start_task(id_task)
            try:
                res = func(*args, **kwargs)
                progress.record_results(id_task, res)
            except Exception as e:  # pylint: disable=broad-except
                log.error(f"Exception: {e}")
                log.error(f"Arguments: args={str(args)[:10240]} kwargs={str(kwargs)[:10240]}")
                errors.display(e, 'gradio call')
                res = extra_outputs or []
                res.append(f"<div class='error'>{html.escape(str(e))}</div>")
            finally:
                progress.finish_task(id_task)
        return res
    return wrap_gradio_call(f, extra_outputs=extra_outputs, add_stats=True, name=name)


def wrap_gradio_call(func, extra_outputs=None, add_stats=False, name=None):
    job_name = name if name is not None else func.__name__

    def f(*args, extra_outputs_array=extra_outputs, **kwargs):
        t = time.perf_counter()
        task_id = args[0] if _is_task_id(args) else 0
        jobid = shared.state.begin(job_name, task_id=task_id)
        try:
            res = func(*args, **kwargs)
            if res is None:
                msg = "No result returned from function"
                log.warning(msg)
                res = extra_outputs_array or []
                res.append(f"<div class='error'>{html.escape(msg)}</div>")
            else:
                res = list(res)
        except Exception as e:  # pylint: disable=broad-except
            errors.display(e, 'gradio call')
            res = extra_outputs_array or []
            res.append(f"<div class='error'>{html.escape(type(e).__name__ + ': ' + str(e))}</div>")
        shared.state.end(jobid)
        if not add_stats:
            return tuple(res)
        elapsed = time.perf_counter() - t
        if isinstance(res, list) and isinstance(res[-1], str):
            res[-1] += f"<div class='performance'><p>Time: {elapsed:.2f}s</p></div>"
        return tuple(res)
    return f
