"""modules.shared_state: the one global job state of SDNext (``shared.state``).

Not a stack: every ``begin()`` resets ``interrupted`` (unless the title starts with "Save"),
``skipped``, the counters and the job id; every ``end()`` clears job, job_count, job_no and id.
SDNext itself nests begin/end ('Inference', 'LoRA', 'Hash', 'Save image'...), so an interrupt
requested before a nested begin() is lost and ``job`` flips between names during one job."""
import datetime
import re
import time
import uuid

from modules.logger import log


class State:
    job_history = 0
    task_history = 0
    id = 0
    skipped = False
    interrupted = False
    paused = False
    job = ""
    job_no = 0
    job_count = 0
    batch_no = 0
    batch_count = 0
    frame_count = 0
    total_jobs = 0
    job_timestamp = '0'
    _sampling_step = 0
    sampling_steps = 0
    current_latent = None
    current_noise_pred = None
    current_sigma = None
    current_sigma_next = None
    current_image = None
    current_image_sampling_step = -1
    id_live_preview = 0
    textinfo = None
    prediction_type = "epsilon"
    api = False
    disable_preview = False
    preview_job = -1
    time_start = None
    duration = None
    need_restart = False
    oom = False

    def __init__(self):
        # class-level lists in SDNext; per instance here so each started double is separate
        self.state_history = []
        self.results = []
        self.server_start = time.time()
        log.debug(f'State initialized: id={id(self)}')

    @property
    def sampling_step(self):
        return self._sampling_step

    @sampling_step.setter
    def sampling_step(self, value):
        self._sampling_step = value

    def skip(self):
        log.debug('State: skip requested')
        self.skipped = True

    def interrupt(self):
        log.debug('State: interrupt requested')
        self.interrupted = True

    def pause(self):
        self.paused = not self.paused
        log.debug(f'State: {"pause" if self.paused else "continue"} requested')

    def nextjob(self):
        self.job_no += 1
        self.current_image_sampling_step = -1

    def dict(self):
        return {
            "skipped": self.skipped,
            "interrupted": self.interrupted,
            "job": self.job,
            "job_count": self.job_count,
            "job_timestamp": self.job_timestamp,
            "job_no": self.job_no,
            "sampling_step": self.sampling_step,
            "sampling_steps": self.sampling_steps,
        }

    def status(self):
        """The fields of SDNext's ResStatus (/sdapi/v1/status), as a dict."""
        from modules import progress
        res = {
            "task": self.job, "current": progress.current_task or '', "id": self.id,
            "job": max(self.job_no, 0), "jobs": max(self.frame_count, self.job_count, self.job_no),
            "total": self.total_jobs, "timestamp": self.job_timestamp if self.job != '' else None,
            "step": self.sampling_step, "steps": self.sampling_steps,
            "queued": len(progress.pending_tasks), "uptime": round(time.time() - self.server_start),
        }
        res["step"] = res["steps"] * res["job"] + res["step"]
        res["steps"] = res["steps"] * res["jobs"]
        res["progress"] = round(min(1, abs(res["step"] / res["steps"]) if res["steps"] > 0 else 0), 2)
        res["elapsed"] = round(time.time() - self.time_start, 2) if self.time_start is not None else None
        if self.paused:
            res["status"] = 'paused'
        elif self.interrupted:
            res["status"] = 'interrupted'
        elif self.skipped:
            res["status"] = 'skipped'
        else:
            res["status"] = 'running' if self.job != '' else 'idle'
        return res

    def find(self, task_id):
        for job in reversed(self.state_history):
            if job['id'] == task_id:
                return job
        return None

    def history(self, op, task_id=None, results=None):
        self.state_history.append({
            'id': task_id or self.id, 'job': self.job.lower(), 'op': op.lower(),
            'timestamp': self.time_start, 'duration': self.duration, 'outputs': results or [],
        })
        if len(self.state_history) > 10000:
            del self.state_history[0]

    def outputs(self, results):
        if isinstance(results, list):
            self.results += results
        else:
            self.results.append(results)
        if len(self.results) > 0:
            self.history('output', self.id, results=self.results)

    def get_id(self, task_id=None):
        if task_id is None or task_id == 0:
            task_id = uuid.uuid4().hex[:15]
        if not isinstance(task_id, str):
            task_id = str(task_id)
        match = re.search(r'\((.*?)\)', task_id)
        return match.group(1) if match else task_id

    def clear(self):
        self.id = ''
        self.job = ''
        self.job_count = 0
        self.job_no = 0
        self.frame_count = 0
        self.preview_job = -1
        self.duration = None
        self.paused = False
        self.results = []

    def begin(self, title="", task_id=0, api=None):
        self.clear()
        self.interrupted = self.interrupted if title.startswith('Save') else False
        self.skipped = False
        self.job_history += 1
        self.total_jobs += 1
        self.current_image = None
        self.current_image_sampling_step = -1
        self.current_latent = None
        self.current_noise_pred = None
        self.current_sigma = None
        self.current_sigma_next = None
        self.id_live_preview = 0
        self.id = self.get_id(task_id)
        self.job = title
        self.job_count = 1
        self.batch_no = 0
        self.batch_count = 0
        self.job_timestamp = datetime.datetime.now().strftime("%Y%m%d%H%M%S")
        self._sampling_step = 0
        self.sampling_steps = 0
        self.textinfo = None
        self.prediction_type = "epsilon"
        self.api = api if api is not None else False
        self.time_start = time.time()
        self.history('begin', self.id)
        return self.id

    def end(self, task_id=None, api=None):
        if task_id is not None:
            prev_job = self.find(task_id)
            if prev_job is not None:
                self.id = prev_job['id']
                self.job = prev_job['job']
                self.duration = round(time.time() - prev_job['timestamp'], 3) if prev_job['timestamp'] is not None else None
        self.time_start = time.time()
        if api is not None:
            self.api = api
        self.history('end', task_id or self.id)
        self.clear()

    def step(self, step=1):
        self.sampling_step += step

    def update(self, job, steps=0, jobs=0):
        self.task_history += 1
        if job == 'Ignore':
            return
        if job == 'Grid':
            self.sampling_steps = steps
            self.job_count = jobs
        else:
            self.sampling_steps += (steps * jobs)
            self.job_count += jobs

    def set_current_image(self):
        """Decode the current latent into ``current_image`` (the live preview); SDNext's
        progress API calls this, nothing else does, so without a poller ``current_image``
        stays None. Skipped for API jobs, with lowvram and while no new step happened."""
        from modules.shared import cmd_opts
        if self.job in ('VAE', 'Upscale') or cmd_opts.lowvram or self.api or self.disable_preview:
            return False
        return self.do_set_current_image()

    def do_set_current_image(self):
        if self.disable_preview or self.current_image_sampling_step == self.sampling_step:
            return False
        if self.current_latent is not None:
            from modules import images
            self.current_image_sampling_step = self.sampling_step
            self.assign_current_image(images.image_grid(self.current_latent))  # the double's latent: the images
            return True
        return False

    def assign_current_image(self, image):
        self.current_image = image
        self.id_live_preview += 1
