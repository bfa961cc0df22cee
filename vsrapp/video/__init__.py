"""Video I/O for vsrapp: decode with PyAV, hand RGB frames to the upscaler, encode and remux.

Public API::

    probe(path) -> VideoInfo
    list_packets(path, stream_index) -> list[PacketRecord]
    with VideoReader(path, threads=None) as reader:          # reader.info, reader.errors
        for frame in reader.frames(start=0): ...              # Frame(image, pts, time_base, index, duration)
    timeline(path) -> Timeline                                 # frame count and keyframes, from packets only
        reader.frames(start=n, seek=tl.keyframe_at_or_before(n))  # start decoding at a keyframe
    with VideoWriter(out_path, reader, scale=4, codec="libx264", crf=None, preset=None,
                     pix_fmt=None, copy_streams=True) as writer:
        writer.write(frame)                                   # close() on success, abort() on exception
    VideoError                                                # every problem a user's file can cause

Decisions (tested in tests/test_video*.py):

* Images are H x W x 3 RGB: uint8 for 8-bit sources, uint16 (full 0..65535 scale) for deeper sources.
* Timing: every frame keeps its source pts and time base; the output video stream uses the input's time base,
  so variable frame rate, duration and frame count survive. Frames without pts continue at the average rate.
* Corrupt frames: a frame the decoder loses (with a decode error) is replaced by a copy of the previous good
  frame at the lost frame's own pts, logged as a warning and listed in ``reader.errors``; the count and timing
  stay. A file that ends early is also listed there. A file with no decodable frame raises VideoError.
* Colour: matrix, range, primaries and transfer are read from the source; untagged sources are BT.601 below
  720 lines and BT.709 otherwise, limited range (``VideoInfo.colour_used``). Conversion YUV <-> RGB always
  passes that matrix and range to swscale explicitly. The output keeps the source's colour (even when a x4 SD
  output is HD-sized: re-matrixing would be lossy, and explicit tags make players decode it correctly) and is
  tagged with all four values. HDR transfers pass through untouched (no tone mapping); HDR10 static metadata
  (mastering display, content light level) goes into the bitstream where the encoder can write it
  (:mod:`vsrapp.video.hdr`).
* Codec: the one asked for must fit the output's container, else one line before any work; none asked for picks
  one that fits (libx264, libvpx-vp9 for WebM): :mod:`vsrapp.video.codecs`.
* 10-bit: >8-bit sources are decoded to uint16 and encoded as yuv420p10le when the encoder takes it.
* Audio and subtitles are copied packet for packet, interleaved in the same write. Audio the container
  cannot hold (or, in mp4, that players do not take, such as PCM) is transcoded to AAC (Opus for webm). Text
  subtitles the container cannot hold are converted between subrip, mov_text and webvtt (text only, styling
  dropped); bitmap subtitles (DVD, DVB, PGS) are copied where the muxer takes them and otherwise dropped with a
  warning saying why.
* Attachments (the fonts of styled ASS subtitles, cover art) are copied into Matroska outputs; other containers
  cannot hold them, and a warning names each one dropped.
* Interlaced input can be deinterlaced on decode (``VideoReader(deinterlace=True)``, FFmpeg's bwdif in
  ``send_frame`` mode: same frames, same timestamps; :mod:`vsrapp.video.deinterlace`); the jobs do that by
  default for inputs flagged interlaced, with one note line (:mod:`vsrapp.video.notes`).
* Rotation (display matrix) and sample aspect ratio are copied to the output.
* The writer writes ``.<name>.partial<ext>`` beside the target and renames it only on a successful close;
  writing over the input is refused.
* Early exit: leaving a ``frames()`` loop early, or closing the reader mid-stream, drains the threaded decoder
  before closing it, which avoids the PyAV #1849/#1861 deadlock.
"""

from ._common import Frame, VideoError
from .colour import ColourInfo
from .info import (
    Headers,
    Keyframe,
    PacketRecord,
    StreamSummary,
    Timeline,
    VideoInfo,
    list_packets,
    probe,
    read_headers,
    timeline,
)
from .reader import VideoReader
from .writer import VideoWriter

__all__ = [
    "ColourInfo",
    "Frame",
    "Headers",
    "Keyframe",
    "PacketRecord",
    "StreamSummary",
    "Timeline",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "list_packets",
    "probe",
    "read_headers",
    "timeline",
]
