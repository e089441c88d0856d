"""OKX in the stream registry (`connectors.registry`): one source per stream, all its markets."""

from __future__ import annotations

from functools import partial

from connectors.okx.source import SOURCE, STREAMS, okx_source
from connectors.registry import register

for _stream in STREAMS:
    register(_stream, SOURCE, partial(lambda settings, stream: okx_source(settings, stream), stream=_stream))
