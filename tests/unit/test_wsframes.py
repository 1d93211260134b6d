"""The pre-encoded WebSocket text frame, read back by the websockets library's own frame parser."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from relaycore.wsframes import text_frame


@pytest.mark.parametrize("length", [0, 125, 126, 65_535, 65_536])
def test_text_frames_of_every_length_class_parse_back(length: int) -> None:
    """Lengths at each boundary of RFC 6455's 7/16/64-bit encodings parse as one final text frame."""
    text = "é" * (length // 2) + "x" * (length % 2)
    reader = StreamReader()
    reader.feed_data(text_frame(text))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as done:
        next(parser)
    frame = done.value.value
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data.decode() == text
