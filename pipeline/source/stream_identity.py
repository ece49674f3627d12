"""A Kinesis checkpoint is bound to the stream it was read from: its ARN and creation time.

Sequence numbers only mean something in the stream that issued them. A stream deleted and created again
under the same name (an emulator restarted, a stack re-provisioned) starts numbering afresh, and a query
resuming at the old numbers would silently skip whatever the new stream holds below them. So the first
trigger of a query records the stream's identity next to Spark's offset log
(``<checkpoint>/stream-identity.json``), and every later start compares the stream it finds with it: a
different stream is refused with what to do.

A checkpoint that already has offsets but no identity (written by a revision before this file existed)
cannot be checked; it is bound to the stream it finds now.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

from core.errors import PipelineError

IDENTITY_FILE: Final = "stream-identity.json"


def describe_identity(kinesis: Any, stream: str) -> dict[str, str]:
    """The stream's name, ARN and creation time as the service reports them."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    except (BotoCoreError, ClientError) as e:
        raise PipelineError(
            f"cannot describe Kinesis stream {stream!r}: {e}; is the stack up (`coattail up`) and the "
            "stream provisioned?"
        ) from e
    created = summary["StreamCreationTimestamp"]
    return {
        "stream": stream,
        "arn": str(summary["StreamARN"]),
        "created": created.isoformat() if hasattr(created, "isoformat") else str(created),
    }


def bind(checkpoint: Path, identity: dict[str, str]) -> None:
    """Record ``identity`` in ``checkpoint`` the first time; afterwards refuse any other stream."""
    path = checkpoint / IDENTITY_FILE
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(identity, sort_keys=True))
        os.replace(tmp, path)
        return
    except ValueError as e:
        raise PipelineError(
            f"{path} is not a stream identity file ({e}); start with a fresh --checkpoint"
        ) from e
    if recorded != identity:
        raise PipelineError(
            f"the checkpoint {checkpoint} was written reading Kinesis stream {recorded.get('stream')!r} "
            f"({recorded.get('arn')}, created {recorded.get('created')}), but the stream found now is "
            f"{identity['stream']!r} ({identity['arn']}, created {identity['created']}): the stream was "
            "deleted and created again (an emulator restart does that), so the checkpoint's sequence "
            "numbers mean nothing in it and resuming would skip records. Start with a fresh --checkpoint "
            "(and a fresh storage.namespace, or the bronze tables refuse it)"
        )
