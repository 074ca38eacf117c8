"""The processor's logic, natively: ``python -m pytest`` (or ``python -m unittest``)
in this folder, with the SDK on the path (``PYTHONPATH=../guest-sdk-python``)."""

import json
import unittest

from rustmq_etl import Message, Output, Retry
from rustmq_etl.testing import Harness

import app


def reading(value, **headers):
    return Output(value.encode(), "sensor-1", list(headers.items()), 1)


class ProcessorTest(unittest.TestCase):
    def test_json_is_marked_and_celsius_converted(self):
        [out] = app.transform_message(
            reading('{"temperature_celsius": 25.0}', **{"content-type": "application/json", "source": "t"}),
            1024,
            7,
        )
        body = json.loads(out.value)
        self.assertEqual(body["temperature_fahrenheit"], 77.0)
        self.assertTrue(body["_processed"])
        self.assertEqual(out.header("processed_at"), "7")
        self.assertEqual(out.header("enriched"), "true")

    def test_spam_large_and_sourceless_messages_are_filtered(self):
        self.assertEqual(app.transform_message(reading("SPAM", source="t"), 1024, 0), [])
        self.assertEqual(app.transform_message(reading("x" * 11, source="t"), 10, 0), [])
        self.assertEqual(app.transform_message(reading("fine"), 1024, 0), [])

    def test_geolocation_comes_from_the_client_ip(self):
        [out] = app.transform_message(reading("x", source="t", client_ip="8.8.8.8"), 1024, 0)
        self.assertEqual((out.header("geo_country"), out.header("geo_city")), ("US", "Mountain View"))

    def test_bad_json_is_retried_and_a_bad_parameter_refused(self):
        harness = Harness(app.Processor)
        with self.assertRaises(Retry):
            harness.run(Message(b"{not json", "k", [("content-type", "application/json"), ("source", "t")]))
        with self.assertRaises(ValueError):
            Harness(app.Processor, {"max_value_bytes": "lots"})


if __name__ == "__main__":
    unittest.main()
