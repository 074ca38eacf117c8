"""The SDK natively: outputs, errors and the harness's state semantics."""

import unittest

from rustmq_etl import DeadLetter, Message, Output, Retry, Transform, state
from rustmq_etl.testing import Harness


class Counter(Transform):
    def process(self, msg, ctx):
        count = int(state.get(msg.key) or b"0") + 1
        state.set(msg.key, str(count))
        if msg.value == b"retry":
            raise Retry("asked to")
        if msg.value == b"dead":
            raise DeadLetter("dead letter", [Output.of(msg).with_header("why", "asked")])
        return [Output.of(msg).with_value(str(count))]


class SdkTest(unittest.TestCase):
    def test_outputs_copy_the_message_and_change_what_they_are_told(self):
        msg = Message(b"v", "k", [("a", "1"), ("a", "2")], 5)
        out = Output.of(msg).with_value("w").with_header("a", "3").to("alerts")
        self.assertEqual((out.value, out.key, out.timestamp, out.topic), (b"w", "k", 5, "alerts"))
        self.assertEqual(out.headers, [("a", "3")])
        self.assertEqual(msg.header("a"), "2")

    def test_a_retry_discards_the_calls_state_and_a_dead_letter_keeps_it(self):
        h = Harness(Counter)
        self.assertEqual(h.run(Message(b"x", "k"))[0].value, b"1")
        with self.assertRaises(Retry):
            h.run(Message(b"retry", "k"))
        self.assertEqual(h.state["k"], b"1")
        with self.assertRaises(DeadLetter) as dead:
            h.run(Message(b"dead", "k"))
        self.assertEqual(h.state["k"], b"2")
        self.assertEqual(dead.exception.outputs[0].header("why"), "asked")

    def test_process_batch_answers_each_message_or_its_failure(self):
        h = Harness(Counter)
        from rustmq_etl import BatchContext

        answers = h.transform.process_batch(
            [Message(b"x", "a"), Message(b"retry", "b")], BatchContext("p", "t", [0, 1])
        )
        self.assertEqual(answers[0][0].value, b"1")
        self.assertIsInstance(answers[1], Retry)


if __name__ == "__main__":
    unittest.main()
