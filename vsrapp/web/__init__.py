"""The web page (``vsrapp serve`` / ``python app.py``): one job, the page's.

- :mod:`.cli`: the ``serve`` subcommand and ``app.py``'s options (never imports Gradio until the page starts);
- :mod:`.ui`: the Gradio page, wiring only;
- :mod:`.guard`: the server's limits and the checks of a visitor's file; :mod:`.menu`: the model menu;
- :mod:`.preview`, :mod:`.compare`, :mod:`.live`: the page's upscaling run, its before/after frame and its
  webcam mode, each over the public engine (:class:`vsrapp.Upscaler`, :func:`vsrapp.upscale_file`).

Nothing is imported here, so that ``vsrapp``'s argument parser can load :mod:`.cli` without Gradio.
"""
