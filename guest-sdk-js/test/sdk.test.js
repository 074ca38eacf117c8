import assert from "node:assert/strict";
import { test } from "node:test";

import { DeadLetter, Harness, JsonFloat, Output, Retry, parseJson, state, stringifyJson } from "../rustmq-etl.js";

test("floats survive a JSON round trip as serde_json writes them", () => {
  const body = parseJson('{"b": 25.0, "a": [1, 2.5, 1e3, -40], "c": "x\\u00e9"}');
  assert.ok(body.b instanceof JsonFloat);
  assert.equal(stringifyJson(body), '{"a":[1,2.5,1000.0,-40],"b":25.0,"c":"xé"}');
  assert.throws(() => parseJson("{bad"), SyntaxError);
});

test("a retry discards the call's state and a dead letter keeps it", () => {
  const counter = {
    process(msg) {
      const n = Number(new TextDecoder().decode(state.get(msg.key) ?? new Uint8Array())) + 1;
      state.set(msg.key, String(n));
      const text = new TextDecoder().decode(msg.value);
      if (text === "retry") throw new Retry("asked to");
      if (text === "dead") throw new DeadLetter("asked to", [Output.of(msg).withHeader("why", "asked")]);
      return [Output.of(msg).withValue(String(n))];
    },
  };
  const h = new Harness(counter);
  assert.equal(h.run({ key: "k", value: "x" })[0].text(), "1");
  assert.throws(() => h.run({ key: "k", value: "retry" }), Retry);
  assert.equal(new TextDecoder().decode(h.state.get("k")), "1");
  assert.throws(() => h.run({ key: "k", value: "dead" }), DeadLetter);
  assert.equal(new TextDecoder().decode(h.state.get("k")), "2");
});
