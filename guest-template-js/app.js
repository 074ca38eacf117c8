// The deployment guide's example processor, in JavaScript: it stamps `processed_at`,
// rewrites JSON bodies (adds `_processed`, converts Celsius to Fahrenheit), filters
// unwanted messages and adds enrichment headers. The same logic as the Rust template
// (`guest-template/`), and the same outputs byte for byte.
//
// Edit `transformMessage` and its helpers; `test/app.test.js` tests them natively
// (`node --test`), and `build.sh` builds the component from `component.js`.

import { JsonFloat, Output, Retry, log, parseJson, stringifyJson } from "./rustmq-etl.js";

/** Values larger than this (in bytes) are filtered out unless the pipeline sets the
 * `max_value_bytes` parameter. */
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;

/** The module: `init` reads the parameters, `process` every message. */
export const processor = {
  maxValueBytes: DEFAULT_MAX_VALUE_BYTES,

  init(params) {
    this.maxValueBytes = DEFAULT_MAX_VALUE_BYTES;
    if ("max_value_bytes" in params) {
      const value = params.max_value_bytes;
      if (!/^\d+$/.test(value)) {
        throw new Error(
          `parameter max_value_bytes must be a whole number of bytes, got ${JSON.stringify(value)}`,
        );
      }
      this.maxValueBytes = Number(value);
    }
  },

  process(msg, ctx) {
    const outputs = transformMessage(Output.of(msg), this.maxValueBytes, Math.floor(Date.now() / 1000));
    if (outputs.length === 0) {
      log("debug", `filtered offset ${ctx.sourceOffset} of ${ctx.sourceTopic}`);
    }
    return outputs;
  },
};

/** One message in, zero or one out. `nowSecs` is passed in so tests are
 * deterministic. A value that is not the JSON its content type says is retried. */
export function transformMessage(out, maxValueBytes, nowSecs) {
  out = out.withHeader("processed_at", String(nowSecs));
  if (out.header("content-type") === "application/json") {
    out = transformJson(out);
  }
  if (shouldFilter(out, maxValueBytes)) return [];
  return [enrich(out)];
}

/** Marks a JSON object as processed and adds `temperature_fahrenheit` when it has a
 * numeric `temperature_celsius`. */
export function transformJson(out) {
  let body;
  try {
    body = parseJson(out.text());
  } catch (e) {
    throw new Retry(`Invalid JSON: ${e.message}`);
  }
  if (body && typeof body === "object" && !Array.isArray(body)) {
    body._processed = true;
    body._processor_version = "1.0.0";
    const celsius = body.temperature_celsius;
    if (typeof celsius === "number" || celsius instanceof JsonFloat) {
      body.temperature_fahrenheit = new JsonFloat((Number(celsius) * 9) / 5 + 32);
    }
  }
  return out.withValue(stringifyJson(body));
}

/** Whether a message is dropped: no `source` header, too large, or spam. */
export function shouldFilter(out, maxValueBytes) {
  if (out.header("source") === undefined || out.value.length > maxValueBytes) return true;
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(out.value);
  } catch {
    return false;
  }
  return text.includes("SPAM") || text.includes("DELETE");
}

/** The enrichment headers, and geolocation when a `client_ip` header is there. */
export function enrich(out) {
  out = out.withHeader("enriched", "true").withHeader("processor", "message-processor-v1");
  const ip = out.header("client_ip");
  if (ip !== undefined) {
    const [country, city] = lookupGeolocation(ip);
    out = out.withHeader("geo_country", country).withHeader("geo_city", city);
  }
  return out;
}

/** A stand-in for a real lookup: prefix matching only. */
export function lookupGeolocation(ip) {
  if (ip.startsWith("192.168.") || ip.startsWith("10.")) return ["Local", "Private Network"];
  if (ip.startsWith("8.8.")) return ["US", "Mountain View"];
  return ["Unknown", "Unknown"];
}
