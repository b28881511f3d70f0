"""modules.scripts_postprocessing: base class of Process-tab (extras) scripts."""


class ScriptPostprocessing:
    filename = None
    controls = None
    args_from = None
    args_to = None
    order = 1000
    name = None

    def ui(self):
        pass

    def process(self, pp, **args):
        pass

    def postprocess(self, filenames, **args):
        pass

    def image_changed(self):
        pass


class ScriptPostprocessingRunner:
    def __init__(self):
        self.scripts = None
        self.ui_created = False
