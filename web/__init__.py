"""The Gradio page: its layout (:mod:`web.page`), callbacks (:mod:`web.callbacks`) and view
(:mod:`web.view`), a thin layer over :mod:`voice`."""
