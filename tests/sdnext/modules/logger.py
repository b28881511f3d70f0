"""modules.logger: SDNext's "sd" logger, with trace() and traceback(), recording every record.

SDNext logs through a rich console handler; the double keeps every record in ``records`` so
tests can assert on what was logged (``errors()``/``warnings()``) instead of reading output."""
import logging
import traceback as _traceback

TRACE = 5
logging.addLevelName(TRACE, "TRACE")


class RecordingHandler(logging.Handler):
    def __init__(self):
        super().__init__(level=1)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


class SDLogger(logging.Logger):
    def trace(self, msg, *args, **kwargs):
        self.log(TRACE, msg, *args, **kwargs)

    def traceback(self, e, suppress=None):  # pylint: disable=unused-argument
        text = "".join(_traceback.format_exception(type(e), e, e.__traceback__))
        self.log(logging.ERROR, "Exception traceback:\n%s", text, extra={"exception": e})


# Not registered with logging.getLogger: every import of the double gets a fresh logger.
log = SDLogger("sd", level=1)
log.propagate = False
handler = RecordingHandler()
log.addHandler(handler)
records = handler.records


def messages(level=logging.DEBUG, exact=False):
    """Formatted messages of the recorded records at ``level`` or above (exactly, with exact)."""
    return [r.getMessage() for r in records if (r.levelno == level if exact else r.levelno >= level)]


def errors():
    return messages(logging.ERROR)


def warnings():
    return messages(logging.WARNING, exact=True)


def get_log():
    return log


def setup_logging(*args, **kwargs):  # pylint: disable=unused-argument
    """SDNext re-installs its handlers here; the recording handler stays as it is."""
