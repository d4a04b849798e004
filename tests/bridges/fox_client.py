"""A minimal client of the Foxglove WebSocket protocol (``websockets``' sync client), for the tests.

It speaks the protocol as the Foxglove app does: JSON ``serverInfo``/``advertise`` from the server,
a JSON ``subscribe`` from the client, binary message-data frames (opcode 1, subscription id u32,
log time u64, little-endian, then the payload). It offers both subprotocol names.
"""

from __future__ import annotations

import json
import struct
import time

import numpy as np
from scipy.spatial.transform import Rotation
from websockets.sync.client import connect

SUBPROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"]


class FoxClient:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.ws = connect(url, subprotocols=SUBPROTOCOLS, open_timeout=timeout, max_size=None).__enter__()
        self.channels: dict[str, dict] = {}
        self.server_info: dict | None = None
        self._subs: dict[int, str] = {}
        self._next_sub = 1
        self.pending: list[tuple[str, int, dict]] = []

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> FoxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handle(self, frame: bytes | str) -> None:
        if isinstance(frame, str):
            msg = json.loads(frame)
            if msg.get("op") == "serverInfo":
                self.server_info = msg
            elif msg.get("op") == "advertise":
                for ch in msg["channels"]:
                    self.channels[ch["topic"]] = ch
            return
        if frame[0] == 0x01:
            sub_id, log_time = struct.unpack_from("<IQ", frame, 1)
            topic = self._subs.get(sub_id)
            if topic is not None:
                self.pending.append((topic, log_time, json.loads(frame[13:])))

    def wait_for_channels(self, topics: list[str], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(t in self.channels for t in topics):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"not advertised: {set(topics) - set(self.channels)}")
            self._handle(self.ws.recv(timeout=left))

    def subscribe(self, topics: list[str]) -> None:
        self.wait_for_channels(topics)
        subs = []
        for t in topics:
            sid = self._next_sub
            self._next_sub += 1
            self._subs[sid] = t
            subs.append({"id": sid, "channelId": self.channels[t]["id"]})
        self.ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))

    def collect(self, until, timeout: float = 10.0) -> list[tuple[str, int, dict]]:
        """Receive until ``until(messages)`` is true; returns (topic, log_time_ns, message) triples."""
        deadline = time.monotonic() + timeout
        while not until(self.pending):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"condition not met; got {len(self.pending)} messages")
            try:
                self._handle(self.ws.recv(timeout=min(left, 0.5)))
            except TimeoutError:
                continue
        return self.pending


def tf_matrix(tf: dict) -> np.ndarray:
    """The 4x4 transform of a foxglove.FrameTransform message."""
    T = np.eye(4)
    r, p = tf["rotation"], tf["translation"]
    T[:3, :3] = Rotation.from_quat([r["x"], r["y"], r["z"], r["w"]]).as_matrix()
    T[:3, 3] = [p["x"], p["y"], p["z"]]
    return T
