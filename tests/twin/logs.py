"""A container's output, line by line, into moto's CloudWatch Logs, where SageMaker puts it
(https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html); the last lines are kept at hand
for failure reasons."""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from botocore.exceptions import ClientError


class LogStream:
    def __init__(self, logs: Any, group: str, stream: str, keep: int = 40) -> None:
        self.logs, self.group, self.stream = logs, group, stream
        self.tail: collections.deque[str] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        try:
            logs.create_log_group(logGroupName=group)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise
        logs.create_log_stream(logGroupName=group, logStreamName=stream)

    def write(self, line: str) -> None:
        line = line.rstrip("\n")
        with self._lock:
            self.tail.append(line)
            event = {"timestamp": int(time.time() * 1000), "message": line or " "}
            self.logs.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=[event])

    def last(self, count: int) -> str:
        return "\n".join(list(self.tail)[-count:])
