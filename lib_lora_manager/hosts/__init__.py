"""Host adapters: ``sdnext`` (the only module importing SDNext's ``modules``) and ``standalone``
(our own Gradio app over FastAPI). The core never imports them."""
