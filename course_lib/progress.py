"""Progress bars that stay readable where widgets are not drawn.

In a notebook, transformers ("Loading weights"), datasets and TRL ("Tokenizing train dataset") draw tqdm's widget
bars (`tqdm.auto`). A saved notebook keeps a bar's widget and, for every viewer that cannot draw widgets
(GitHub, nbviewer, an executed copy opened without its kernel), a text line, written when the bar appeared:
"Loading weights: 0%| 0/20". `readable_progress_bars()` rewrites that line when the bar closes, so that it
shows where the bar ended ("100%| 20/20 [00:01<00:00]"); live, in Colab or JupyterLab, the widget is drawn
and updated as before.
"""

from __future__ import annotations

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def readable_progress_bars() -> None:
    """From now on, each tqdm widget bar of this kernel is displayed with a display id, and updated when it
    closes with its final state, as text beside the widget. Calling it again changes nothing."""
    import tqdm.notebook as notebook_bars
    from IPython.display import display

    bar_class = notebook_bars.tqdm_notebook
    if getattr(bar_class, "_ends_as_text", False):
        return

    def display_with_id(container):
        container.final_display = display(container, display_id=True)
        container.widget_view = container._repr_mimebundle_().get(WIDGET_VIEW)

    def close(self):
        close_widget(self)
        container = getattr(self, "container", None)
        handle = getattr(container, "final_display", None)
        if handle is None:
            return
        # A bar left open is closed by its __del__, when the container's link back to it is already gone: the
        # final text comes from the bar itself, the widget part from what was displayed.
        kept = self.leave or (self.total and self.n < self.total)  # tqdm keeps these bars; it hides the others
        bundle = {"text/plain": str(self) if kept else ""}
        if kept and container.widget_view:
            bundle[WIDGET_VIEW] = container.widget_view
        handle.update(bundle, raw=True)

    close_widget = bar_class.close
    notebook_bars.display = display_with_id  # the name tqdm.notebook calls to show a bar
    bar_class.close = close
    bar_class._ends_as_text = True
