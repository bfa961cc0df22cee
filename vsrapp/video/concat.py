"""Join encoded video segments into one file, losslessly, and remux the source's audio and subtitles with them.

This is how a resumable job ends: each segment was encoded on its own (so a crash loses at most one segment),
and the final file is a packet copy of the segments in order, interleaved in the same write with the source's
side streams, exactly as :class:`~vsrapp.video.writer.VideoWriter` does for a single pass.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import av

from ._common import VideoError, _short, open_input
from .info import VideoInfo
from .streams import SideStreams
from .writer import _open_output, _partial_path, _refuse_overwriting_input, _remove


def join_segments(parts: Sequence[str | os.PathLike], source: VideoInfo, path: str | os.PathLike,
                  copy_streams: bool = True) -> int:
    """Write ``parts`` (video-only files of one encoder setting, in order) to ``path``; return the packet count.

    The file appears under ``path`` only when everything succeeded. Decoding timestamps must rise across a
    join: each segment's encoder started its own B-frame delay, so a segment's first DTS can fall at or
    before the previous segment's last; those are moved just past it (their PTS, and so the timing, never
    change, and DTS stays at or before PTS).
    """
    if not parts:
        raise VideoError(f"{os.fspath(path)}: no segments to join")
    final = os.fspath(path)
    _refuse_overwriting_input(final, source.path)
    tmp = _partial_path(final)
    out = _open_output(tmp, final)
    side = None
    count = 0
    try:
        with open_input(parts[0]) as first:
            template = first.streams.video[0]
            # opaque: copy the codec parameters only (no encoder lookup; decoders like libdav1d have none).
            stream = out.add_stream_from_template(template, opaque=True)
            stream.time_base = template.time_base
            if source.fps:
                # The segments' codec parameters give a frame rate of one per time-base tick (1000 for Matroska),
                # which the Matroska muxer writes as the default frame duration: 1 ms, so an mkv output probed as
                # 1000 fps and 40x its frame count (found by tests/test_robustness_more.py). The source's rate.
                stream.codec_context.framerate = source.fps
        out.metadata.update(source.tags)
        stream.metadata.update(source.video_tags)
        if source.rotation:
            stream.set_display_rotation(source.rotation)
        side = SideStreams(out, source, final) if copy_streams else None
        last_dts = None
        for part in parts:
            with open_input(part) as container:
                src = container.streams.video[0]
                if src.time_base != stream.time_base:
                    raise VideoError(f"{os.fspath(part)}: time base {src.time_base} differs from the first "
                                     f"segment's {stream.time_base}")
                for packet in container.demux(src):
                    if not packet.size:
                        continue
                    if packet.dts is not None and last_dts is not None and packet.dts <= last_dts:
                        packet.dts = last_dts + 1
                        if packet.pts is not None and packet.pts < packet.dts:
                            raise VideoError(f"{os.fspath(part)}: segments overlap in time; cannot join")
                    last_dts = packet.dts if packet.dts is not None else last_dts
                    if side is not None and packet.dts is not None:
                        side.pump_until(packet.dts * packet.time_base)
                    packet.stream = stream
                    out.mux(packet)
                    count += 1
        if side is not None:
            side.finish()
        out.close()
    except BaseException as exc:
        try:
            out.close()
        except Exception:  # half-written container; it is deleted below anyway
            pass
        _remove(tmp)
        if isinstance(exc, av.error.FFmpegError):
            # "Joining segments" means nothing to a user; say what could not be written and where to look.
            raise VideoError(f"{final}: could not write the output with the input's audio/subtitles "
                             f"({_short(exc)}); the input may be damaged (--debug shows where)") from exc
        raise
    finally:
        if side is not None:
            side.close()
    os.replace(tmp, final)
    return count
