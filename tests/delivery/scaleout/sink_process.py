"""An aiosmtpd sink in its own process: accepts everything fast, and on SIGTERM prints the
recipients of every accepted message as one JSON list (one entry per message and recipient).

    python sink_process.py PORT
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self) -> None:
        self.recipients: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"


def main() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # for sigwait, in every thread
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    signal.sigwait({signal.SIGTERM})
    controller.stop()
    sys.stdout.write(json.dumps(recorder.recipients) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
