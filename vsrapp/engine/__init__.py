"""The frame-by-frame engine: what turns low-resolution frames into upscaled ones, whatever runs the network.

``upscaler`` (the :class:`~vsrapp.engine.upscaler.Upscaler`: windows, look-ahead, tiles, devices, precision),
``recurrence`` (the one copy of the recurrence schedule: backward then forward over a window, or step by step),
``backends`` (exported graphs behind the same step API), ``runtimes`` (ONNX Runtime / OpenVINO sessions) and
``compat`` (the one place third-party packages are patched). Imports nothing itself: callers import the module
they use.
"""
