"""modules.ui_components: small gradio component subclasses SDNext's UI uses."""
import gradio as gr


class ToolButton(gr.Button, gr.components.FormComponent):
    """A small square button with an icon."""

    def __init__(self, *args, **kwargs):
        classes = kwargs.pop("elem_classes", [])
        super().__init__(*args, elem_classes=["tool", *classes], **kwargs)

    def get_block_name(self):
        return "button"


class FormRow(gr.Row, gr.components.FormComponent):
    def get_block_name(self):
        return "row"


class FormGroup(gr.Group, gr.components.FormComponent):
    def get_block_name(self):
        return "group"
