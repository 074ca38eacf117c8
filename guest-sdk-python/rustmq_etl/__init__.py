"""Write RustMQ ETL transform modules in Python.

A module is a subclass of :class:`Transform`, exported with :func:`export`. The SDK
converts between the ``rustmq:etl/etl-batch@1.1.0`` records and the plain types
below, so a module never sees WIT records::

    from rustmq_etl import DeadLetter, Output, Transform, export

    class Upper(Transform):
        def process(self, msg, ctx):
            try:
                text = msg.value.decode()
            except UnicodeDecodeError:
                raise DeadLetter("value is not UTF-8")
            return [Output.of(msg).with_value(text.upper())]

    WitWorld = export(Upper)

Natively (``python -m pytest``) the same class runs through :mod:`rustmq_etl.testing`,
with the broker's semantics for failures and state. ``componentize-py`` builds it:
see the README.
"""

from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = [
    "BatchContext",
    "Context",
    "DeadLetter",
    "Message",
    "Output",
    "Retry",
    "StateError",
    "Transform",
    "export",
    "log",
    "param",
    "state",
]


@dataclass
class Message:
    """One message as the module receives it."""

    value: bytes
    key: Optional[str] = None
    headers: List[Tuple[str, str]] = field(default_factory=list)
    timestamp: int = 0

    def header(self, name: str) -> Optional[str]:
        """The value of the last header called ``name``."""
        for k, v in reversed(self.headers):
            if k == name:
                return v
        return None

    def set_header(self, name: str, value: str) -> None:
        """Sets header ``name``, replacing any earlier pairs with that name."""
        self.headers = [(k, v) for k, v in self.headers if k != name]
        self.headers.append((name, str(value)))


@dataclass
class Output:
    """One message the module writes: to the destination, or to ``topic``, one of the
    pipeline's declared ``routes``."""

    value: bytes
    key: Optional[str] = None
    headers: List[Tuple[str, str]] = field(default_factory=list)
    timestamp: int = 0
    topic: Optional[str] = None

    @staticmethod
    def of(msg: Message) -> "Output":
        """An output that starts as a copy of ``msg``."""
        return Output(msg.value, msg.key, list(msg.headers), msg.timestamp)

    def with_value(self, value) -> "Output":
        """This output with another value (``str`` is encoded as UTF-8)."""
        return replace(self, value=value.encode() if isinstance(value, str) else bytes(value))

    def with_header(self, name: str, value: str) -> "Output":
        """This output with header ``name`` set, replacing earlier pairs of that name."""
        headers = [(k, v) for k, v in self.headers if k != name] + [(name, str(value))]
        return replace(self, headers=headers)

    def to(self, topic: str) -> "Output":
        """This output routed to ``topic`` (declared in the pipeline's ``routes``)."""
        return replace(self, topic=topic)

    def header(self, name: str) -> Optional[str]:
        """The value of the last header called ``name``."""
        for k, v in reversed(self.headers):
            if k == name:
                return v
        return None


@dataclass
class Context:
    """Where the message comes from."""

    pipeline_id: str
    source_topic: str
    source_offset: int
    attempt: int = 1


@dataclass
class BatchContext:
    """Where the messages of a batch come from."""

    pipeline_id: str
    source_topic: str
    source_offsets: List[int]
    attempt: int = 1


class Retry(Exception):
    """A failure the pipeline retries per its retry policy; once the retries are spent
    the original message goes to the error topic. The call's state changes are
    discarded."""


class DeadLetter(Exception):
    """The message goes to the error topic at once, with no retry (the outputs given,
    or else the original message); the call's state changes are kept."""

    def __init__(self, reason: str, outputs: Sequence[Output] = ()):
        super().__init__(reason)
        self.outputs = list(outputs)


class StateError(Exception):
    """A state call the broker refused (over the quota or the key and value limits, or
    no state in this pipeline)."""


class Transform:
    """A transform module. One instance per guest instance: ``init`` runs first with
    the pipeline's parameters, then ``process`` for every message. Keep what must
    last in :data:`state`, not on ``self``: the broker may replace an instance at any
    time."""

    def init(self, params: Dict[str, str]) -> None:
        """Reads the pipeline's parameters; raise ``ValueError`` to refuse them (the
        pipeline then fails to start with that message)."""

    def process(self, msg: Message, ctx: Context) -> List[Output]:
        """Transforms one message: no outputs filters it, several fan it out. Raise
        :class:`Retry` or :class:`DeadLetter` to fail it."""
        raise NotImplementedError

    def process_batch(self, msgs: List[Message], ctx: BatchContext) -> list:
        """Transforms a batch (pipelines in ``batch`` mode): one answer per message,
        each a list of outputs or a :class:`Retry` / :class:`DeadLetter` instance.
        The default calls :meth:`process` for each."""
        answers = []
        for msg, offset in zip(msgs, ctx.source_offsets):
            try:
                answers.append(
                    self.process(
                        msg, Context(ctx.pipeline_id, ctx.source_topic, offset, ctx.attempt)
                    )
                )
            except (Retry, DeadLetter) as e:
                answers.append(e)
        return answers


class _Backend:
    """Where state, logs and parameters go: the broker's imports inside a component,
    an in-memory stand-in natively (see :mod:`rustmq_etl.testing`)."""

    def __init__(self):
        self.store: Dict[str, bytes] = {}
        self.params: Dict[str, str] = {}
        self.logs: List[Tuple[str, str]] = []

    def get(self, key):
        return self.store.get(key)

    def set(self, key, value):
        self.store[key] = bytes(value)

    def delete(self, key):
        self.store.pop(key, None)

    def log(self, level, message):
        self.logs.append((level, message))

    def param(self, name):
        return self.params.get(name)


_backend = _Backend()


class _State:
    """The pipeline's durable keyed state (1.1): committed with the batch's outputs."""

    def get(self, key: str) -> Optional[bytes]:
        return _backend.get(key)

    def set(self, key: str, value) -> None:
        _backend.set(key, value.encode() if isinstance(value, str) else value)

    def delete(self, key: str) -> None:
        _backend.delete(key)


state = _State()


def log(level: str, message: str) -> None:
    """A line in the broker's log: ``level`` is trace, debug, info, warn or error."""
    _backend.log(level, message)


def param(name: str) -> Optional[str]:
    """One of the pipeline's parameters, at any time after ``init``."""
    return _backend.param(name)


def export(transform_class):
    """The class componentize-py exports as the component (``WitWorld =
    export(MyTransform)``); it converts the WIT records to and from this module's
    types. Natively it is never called into."""
    from rustmq_etl._component import world_for

    return world_for(transform_class)
