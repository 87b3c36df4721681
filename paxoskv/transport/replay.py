"""Sliding replay windows: an authenticated frame is accepted once, and never when it is old.

A tag proves who wrote a frame, not when: anyone on the path can record a frame and send it
again later. Every sender numbers its frames (``seq``, from 0 per incarnation), and the
receiver keeps, per sender, the highest number seen and a bitmap of the ``window_frames``
numbers below it -- the anti-replay window of IPsec (RFC 4303, section 3.4.3). A frame is
accepted when it is newer than the highest, or inside the window and not yet seen. Frames
within the window may arrive in any order, which multicast and unicast paths do.

A restarted sender comes back with a larger ``incarnation`` and starts numbering again; a
smaller incarnation is a recording of a previous life and is refused. So incarnations must
grow across restarts (the default is the wall clock in nanoseconds at start-up).

Pure: no clocks, no sockets, so the fuzz tests and the simulator drive it directly. The guard
is only consulted after a frame's tag checked out; without a cluster secret anyone can forge
a fresh number, so the window would protect nothing and is not used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["DEFAULT_WINDOW_FRAMES", "ReplayGuard", "ReplayWindow"]

DEFAULT_WINDOW_FRAMES = 1024
_DEFAULT_MAX_SENDERS = 4096


class ReplayWindow:
    """The window for one sender. ``accept`` says whether a frame is new, and records it."""

    __slots__ = ("full", "highest", "incarnation", "next_in_order", "seen", "window_frames")

    def __init__(self, incarnation: int, seq: int, window_frames: int) -> None:
        if window_frames < 1:
            raise ValueError("window_frames must be at least 1")
        self.window_frames = window_frames
        self.full = (1 << window_frames) - 1  # ``seen`` when every frame of the window came
        self.incarnation = incarnation
        self.highest = seq
        self.seen = 1  # bit i set: frame ``highest - i`` was accepted
        # The steady state's one test: ``highest + 1`` while ``seen == full``, else -1 (no
        # seq). Shifting a full window by one leaves it full, so the next frame in order is
        # accepted by moving this on alone -- ``highest`` is then ``next_in_order - 1`` and
        # is brought up to date only when the general case needs it. One small-int compare
        # per frame, where ``seen == full`` compares a 1024-bit int (a quarter of the window
        # check's cost on the receive path).
        self.next_in_order = -1 if window_frames > 1 else seq + 1

    def accept(self, incarnation: int, seq: int) -> bool:
        if seq == self.next_in_order and incarnation == self.incarnation:
            self.next_in_order = seq + 1
            return True
        if self.next_in_order >= 0:
            self.highest = self.next_in_order - 1
        accepted = self._accept_out_of_order(incarnation, seq)
        self.next_in_order = self.highest + 1 if self.seen == self.full else -1
        return accepted

    def _accept_out_of_order(self, incarnation: int, seq: int) -> bool:
        if incarnation != self.incarnation:
            if incarnation < self.incarnation:
                return False
            self.incarnation, self.highest, self.seen = incarnation, seq, 1
            return True
        if seq > self.highest:
            shift = seq - self.highest
            self.seen = ((self.seen << shift) | 1) & self.full if shift < self.window_frames else 1
            self.highest = seq
            return True
        offset = self.highest - seq
        if offset >= self.window_frames:
            return False
        bit = 1 << offset
        if self.seen & bit:
            return False
        self.seen |= bit
        return True


class ReplayGuard:
    """Windows for every sender heard from, bounded so a flood of ids cannot grow it forever.

    Only senders that hold the cluster secret get a window, so the bound is a backstop: when
    it is hit the longest-known sender is forgotten, and its next frame starts a new window
    (one replay of a frame of that sender could then slip through, which Paxos tolerates --
    duplicates are harmless to it; forgery is what the tag stops).
    """

    def __init__(
        self,
        window_frames: int = DEFAULT_WINDOW_FRAMES,
        max_senders: int = _DEFAULT_MAX_SENDERS,
    ) -> None:
        if window_frames < 1 or max_senders < 1:
            raise ValueError("window_frames and max_senders must be at least 1")
        self.window_frames = window_frames
        self.max_senders = max_senders
        self._windows: dict[str, ReplayWindow] = {}
        # Called when a window is dropped to make room: whoever holds on to windows (the
        # endpoint's straight receive path keeps each known sender's) must let go of them,
        # or a forgotten sender's frames would be checked against two windows.
        self.on_forget: Callable[[], None] | None = None

    def accept(self, sender_id: str, incarnation: int, seq: int) -> bool:
        window = self._windows.get(sender_id)
        if window is not None:
            if seq == window.next_in_order and incarnation == window.incarnation:
                window.next_in_order = seq + 1  # ReplayWindow.accept's steady state, no call
                return True
            return window.accept(incarnation, seq)
        if len(self._windows) >= self.max_senders:
            del self._windows[next(iter(self._windows))]
            if self.on_forget is not None:
                self.on_forget()
        self._windows[sender_id] = ReplayWindow(incarnation, seq, self.window_frames)
        return True

    @property
    def windows(self) -> Mapping[str, ReplayWindow]:
        """The live windows by sender, read-only: the receive path keeps each known sender's
        and takes the in-order case (:meth:`ReplayWindow.accept`'s first test) without a
        call (see ``on_forget``)."""
        return self._windows

    def __len__(self) -> int:
        return len(self._windows)
