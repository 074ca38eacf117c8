// The processor's logic, natively: `node --test` in this folder.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Harness, Output, Retry } from "../rustmq-etl.js";
import { processor, transformMessage } from "../app.js";

const reading = (value, headers) =>
  new Output(value, { key: "sensor-1", headers: Object.entries(headers), timestamp: 1 });

test("JSON is marked, Celsius converted, and floats stay floats", () => {
  const [out] = transformMessage(
    reading('{"temperature_celsius": 25.0}', { "content-type": "application/json", source: "t" }),
    1024,
    7,
  );
  assert.equal(
    out.text(),
    '{"_processed":true,"_processor_version":"1.0.0","temperature_celsius":25.0,"temperature_fahrenheit":77.0}',
  );
  assert.equal(out.header("processed_at"), "7");
  assert.equal(out.header("enriched"), "true");
});

test("spam, large and sourceless messages are filtered", () => {
  assert.deepEqual(transformMessage(reading("SPAM", { source: "t" }), 1024, 0), []);
  assert.deepEqual(transformMessage(reading("x".repeat(11), { source: "t" }), 10, 0), []);
  assert.deepEqual(transformMessage(reading("fine", {}), 1024, 0), []);
});

test("bad JSON is retried and a bad parameter refused", () => {
  const h = new Harness(processor);
  assert.throws(
    () => h.run({ key: "k", value: "{not json", headers: [["content-type", "application/json"], ["source", "t"]] }),
    Retry,
  );
  assert.throws(() => new Harness(processor, { max_value_bytes: "lots" }), /whole number/);
});
