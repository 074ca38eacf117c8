"""Runs a transform natively, as the broker would, for unit tests without
WebAssembly: parameters, state with the broker's semantics (a retried failure's
changes are discarded, a dead letter's kept), logs."""

from typing import Dict, List, Optional

import rustmq_etl as sdk


class Harness:
    """One transform instance with an in-memory broker around it."""

    def __init__(self, transform_class, params: Optional[Dict[str, str]] = None):
        self.backend = sdk._Backend()
        self.backend.params = dict(params or {})
        sdk._backend = self.backend
        self.transform = transform_class()
        self.transform.init(dict(self.backend.params))
        self.offset = 0

    @property
    def state(self) -> Dict[str, bytes]:
        """The committed state."""
        return self.backend.store

    def run(self, msg: sdk.Message, attempt: int = 1) -> List[sdk.Output]:
        """Processes one message; raises what the transform raised. State changes of a
        :class:`rustmq_etl.Retry` are discarded."""
        sdk._backend = self.backend
        before = dict(self.backend.store)
        ctx = sdk.Context("local", "local", self.offset, attempt)
        self.offset += 1
        try:
            return list(self.transform.process(msg, ctx))
        except sdk.DeadLetter:
            raise
        except BaseException:
            # A retried failure, or a crash (a trap in the broker): nothing is kept.
            self.backend.store = before
            raise
