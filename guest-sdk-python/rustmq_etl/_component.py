"""The glue componentize-py exports: the ``rustmq:etl/etl-batch@1.1.0`` exports on
one side, a :class:`rustmq_etl.Transform` on the other. Imported only inside a
component, where the generated ``wit_world`` bindings exist."""

import rustmq_etl as sdk


class _Broker(sdk._Backend):
    """The broker's imports behind the SDK's state, log and parameter calls."""

    def get(self, key):
        from componentize_py_types import Err
        from wit_world.imports import state

        try:
            return state.get(key)
        except Err as e:
            raise sdk.StateError(str(e.value)) from None

    def set(self, key, value):
        from componentize_py_types import Err
        from wit_world.imports import state

        try:
            state.set(key, bytes(value))
        except Err as e:
            raise sdk.StateError(str(e.value)) from None

    def delete(self, key):
        from componentize_py_types import Err
        from wit_world.imports import state

        try:
            state.delete(key)
        except Err as e:
            raise sdk.StateError(str(e.value)) from None

    def log(self, level, message):
        from wit_world.imports import host

        levels = {
            "trace": host.LogLevel.TRACE,
            "debug": host.LogLevel.DEBUG,
            "info": host.LogLevel.INFO,
            "warn": host.LogLevel.WARN,
            "error": host.LogLevel.ERROR,
        }
        host.log(levels.get(level, host.LogLevel.INFO), message)

    def param(self, name):
        from wit_world.imports import host

        return host.get_param(name)


def _message(m):
    return sdk.Message(bytes(m.value), m.key, list(m.headers), m.timestamp)


def _result(answer):
    from wit_world.imports import types

    def out(o):
        if isinstance(o, sdk.Message):
            o = sdk.Output(o.value, o.key, o.headers, o.timestamp)
        return types.OutputMessage(o.topic, o.key, bytes(o.value), list(o.headers), o.timestamp)

    if isinstance(answer, sdk.Retry):
        return types.ProcessResult([], False, str(answer) or "retry")
    if isinstance(answer, sdk.DeadLetter):
        return types.ProcessResult([out(o) for o in answer.outputs], True, str(answer) or "dead letter")
    return types.ProcessResult([out(o) for o in answer], True, None)


def world_for(transform_class):
    """The ``WitWorld`` class for ``transform_class``."""
    instance = {}

    class WitWorld:
        def init(self, params):
            from componentize_py_types import Err

            sdk._backend = _Broker()
            transform = transform_class()
            try:
                transform.init(dict(params))
            except ValueError as e:
                raise Err(str(e)) from None
            instance["transform"] = transform

        def process(self, msg, ctx):
            context = sdk.Context(ctx.pipeline_id, ctx.source_topic, ctx.source_offset, ctx.attempt)
            try:
                answer = instance["transform"].process(_message(msg), context)
            except (sdk.Retry, sdk.DeadLetter) as e:
                answer = e
            return _result(answer)

        def process_batch(self, msgs, ctx):
            context = sdk.BatchContext(
                ctx.pipeline_id, ctx.source_topic, list(ctx.source_offsets), ctx.attempt
            )
            answers = instance["transform"].process_batch([_message(m) for m in msgs], context)
            return [_result(a) for a in answers]

    return WitWorld
