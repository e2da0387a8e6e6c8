"""The desktop GUI (PyQt6): one more consumer of :mod:`engine.runtime.pipeline`.

One job per module:

* ``application`` - the QApplication, the window and the session; screenshot mode.
* ``main_window`` - layout, error banner, keyboard shortcuts, fullscreen, close.
* ``session`` - owns the model and the pipeline; the one place wiring the controls to them.
* ``bridge`` - a worker in a QThread turning the pipeline's results and stats into signals.
* ``model_loader`` - loads a model off the GUI thread.
* ``video_view``, ``overlay``, ``images`` - the picture, what is drawn on it, numpy -> QImage.
* ``controls`` and ``routing_controls``, ``source_controls``, ``playback_controls``,
  ``class_filter`` - widgets that emit intent signals and expose setters.
* ``telemetry``, ``chart`` - live numbers and the 30 s scrolling chart.
* ``theme`` - colours (shared with :mod:`engine.render`) and the dark style.

Nothing here imports torch at module import time: the session loads the model through
:func:`app.commands.common.load_model`, which imports it lazily, and reaches the pipeline
module (which imports the model code) only once a model exists.
"""
