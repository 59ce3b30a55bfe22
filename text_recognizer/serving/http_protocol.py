"""uvicorn's h11 protocol with a header read timeout, which uvicorn lacks.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive`` seconds, but only once a response is
complete: a client that connects and sends nothing, or half a request line, or headers a byte a minute, keeps
its connection (and a file descriptor) open for ever. Here every connection must send a complete request head
(request line and headers, at most ``h11_max_incomplete_event_size`` bytes) within :data:`HEADER_TIMEOUT_S` of
connecting or of its previous response, or it is closed. A slow *body* is bounded by the app (the body
limit caps its size; the predict admission limit caps how many such requests are held).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

#: Seconds a connection has to send a whole request head.
HEADER_TIMEOUT_S = 10.0


class HeaderTimeoutH11Protocol(H11Protocol):
    """:class:`H11Protocol` that closes a connection whose request head is not complete in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._waiting_cycle: object = None

    def _start_head_timer(self) -> None:
        self._cancel_head_timer()
        self._waiting_cycle = self.cycle
        self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.cycle is self._waiting_cycle and not self.transport.is_closing():
            self.transport.close()  # no new request head arrived in time

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def handle_events(self) -> None:
        super().handle_events()
        if self._head_timer is not None and self.cycle is not self._waiting_cycle:
            self._cancel_head_timer()  # a request head was parsed: the app has the request now

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._start_head_timer()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)
