// Write RustMQ ETL transforms in JavaScript.
//
// A module is an object with `init(params)` (optional) and `process(msg, ctx)`; the
// build entry (`component.js` in the template) binds it to the broker's
// `rustmq:etl/etl-batch@1.1.0` world with `bind`. Natively (`node --test`) the same
// object runs through `Harness`, with the broker's semantics for failures and state.
//
// Messages are `{key, value, headers, timestamp}`: `value` a Uint8Array, `headers` an
// array of `[name, value]` pairs, `timestamp` milliseconds since the epoch (a Number).
//
// JavaScript numbers have no integer/float distinction: `JSON.parse("25.0")` is 25 and
// comes back out as `25`. Where the difference matters (a JSON body written back for
// consumers that care), `parseJson` keeps it and `stringifyJson` writes it back as
// the Rust SDK's serde_json does (`25.0`, keys sorted).

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One message the module writes: to the destination, or to `topic`, one of the
 * pipeline's declared routes. */
export class Output {
  constructor(value, { key = null, headers = [], timestamp = 0, topic = null } = {}) {
    this.value = typeof value === "string" ? encoder.encode(value) : value;
    this.key = key;
    this.headers = headers.map(([k, v]) => [k, String(v)]);
    this.timestamp = timestamp;
    this.topic = topic;
  }

  /** An output that starts as a copy of `msg`. */
  static of(msg) {
    return new Output(msg.value, { key: msg.key, headers: msg.headers, timestamp: msg.timestamp });
  }

  /** This output with another value (a string is encoded as UTF-8). */
  withValue(value) {
    return new Output(value, this);
  }

  /** This output with header `name` set, replacing earlier pairs of that name. */
  withHeader(name, value) {
    const headers = this.headers.filter(([k]) => k !== name);
    headers.push([name, String(value)]);
    return new Output(this.value, { ...this, headers });
  }

  /** This output routed to `topic` (declared in the pipeline's `routes`). */
  to(topic) {
    return new Output(this.value, { ...this, topic });
  }

  /** The value of the last header called `name`, or undefined. */
  header(name) {
    return header(this, name);
  }

  /** The value as UTF-8 text. */
  text() {
    return decoder.decode(this.value);
  }
}

/** The value of the last header called `name` of a message, or undefined. */
export function header(msg, name) {
  for (let i = msg.headers.length - 1; i >= 0; i--) {
    if (msg.headers[i][0] === name) return msg.headers[i][1];
  }
  return undefined;
}

/** A failure the pipeline retries per its policy; the call's state changes are
 * discarded. */
export class Retry extends Error {}

/** The message goes to the error topic at once (the outputs given, or else the
 * original message); the call's state changes are kept. */
export class DeadLetter extends Error {
  constructor(reason, outputs = []) {
    super(reason);
    this.outputs = outputs;
  }
}

/** A state call the broker refused (quota, key or value limits, no state here). */
export class StateError extends Error {}

function memoryBackend(params = {}) {
  return {
    store: new Map(),
    params,
    logs: [],
    get(key) {
      return this.store.get(key);
    },
    set(key, value) {
      this.store.set(key, value);
    },
    delete(key) {
      this.store.delete(key);
    },
    log(level, message) {
      this.logs.push([level, message]);
    },
    param(name) {
      return this.params[name];
    },
  };
}

let backend = memoryBackend();

/** The pipeline's durable keyed state (1.1): committed with the batch's outputs. */
export const state = {
  get: (key) => backend.get(key),
  set: (key, value) => backend.set(key, typeof value === "string" ? encoder.encode(value) : value),
  delete: (key) => backend.delete(key),
};

/** A line in the broker's log: trace, debug, info, warn or error. */
export function log(level, message) {
  backend.log(level, message);
}

/** One of the pipeline's parameters, at any time after `init`. */
export function param(name) {
  return backend.param(name);
}

function fromWit(m) {
  return { key: m.key ?? null, value: m.value, headers: m.headers, timestamp: Number(m.timestamp) };
}

function toWit(o) {
  const out = o instanceof Output ? o : Output.of(o);
  return {
    topic: out.topic ?? undefined,
    key: out.key ?? undefined,
    value: out.value,
    headers: out.headers,
    timestamp: BigInt(out.timestamp),
  };
}

function result(answer) {
  if (answer instanceof Retry) {
    return { transformedMessages: [], shouldContinue: false, error: answer.message || "retry" };
  }
  if (answer instanceof DeadLetter) {
    return {
      transformedMessages: answer.outputs.map(toWit),
      shouldContinue: true,
      error: answer.message || "dead letter",
    };
  }
  return { transformedMessages: answer.map(toWit), shouldContinue: true, error: undefined };
}

function processOne(transform, msg, ctx) {
  try {
    return transform.process(msg, ctx);
  } catch (e) {
    if (e instanceof Retry || e instanceof DeadLetter) return e;
    throw e; // a crash: the broker retries on a fresh instance
  }
}

/** The `rustmq:etl/etl-batch@1.1.0` exports for `transform`, given the broker's
 * `host` and `state` imports (see the template's `component.js`). */
export function bind(transform, imports) {
  const levels = ["trace", "debug", "info", "warn", "error"];
  backend = {
    get(key) {
      try {
        return imports.state.get(key);
      } catch (e) {
        throw new StateError(String(e.payload ?? e));
      }
    },
    set(key, value) {
      try {
        imports.state.set(key, value);
      } catch (e) {
        throw new StateError(String(e.payload ?? e));
      }
    },
    delete(key) {
      try {
        imports.state.delete(key);
      } catch (e) {
        throw new StateError(String(e.payload ?? e));
      }
    },
    log(level, message) {
      imports.host.log(levels.includes(level) ? level : "info", message);
    },
    param(name) {
      return imports.host.getParam(name);
    },
  };
  return {
    init(params) {
      transform.init?.(Object.fromEntries(params));
    },
    process(msg, ctx) {
      const context = { ...ctx, sourceOffset: Number(ctx.sourceOffset) };
      return result(processOne(transform, fromWit(msg), context));
    },
    processBatch(msgs, ctx) {
      return msgs.map((m, i) =>
        result(
          processOne(transform, fromWit(m), {
            pipelineId: ctx.pipelineId,
            sourceTopic: ctx.sourceTopic,
            sourceOffset: Number(ctx.sourceOffsets[i]),
            attempt: ctx.attempt,
          }),
        ),
      );
    },
  };
}

/** Runs a transform natively, as the broker would: parameters, state (a retried
 * failure's changes discarded, a dead letter's kept), logs. */
export class Harness {
  constructor(transform, params = {}) {
    this.backend = memoryBackend(params);
    backend = this.backend;
    this.transform = transform;
    transform.init?.({ ...params });
    this.offset = 0;
  }

  /** The committed state. */
  get state() {
    return this.backend.store;
  }

  /** Processes one message (`value` may be a string); returns the outputs or throws
   * what the transform threw. */
  run(msg) {
    backend = this.backend;
    const before = new Map(this.backend.store);
    const input = {
      key: msg.key ?? null,
      value: typeof msg.value === "string" ? encoder.encode(msg.value) : msg.value,
      headers: msg.headers ?? [],
      timestamp: msg.timestamp ?? 0,
    };
    const ctx = { pipelineId: "local", sourceTopic: "local", sourceOffset: this.offset++, attempt: 1 };
    try {
      return this.transform.process(input, ctx);
    } catch (e) {
      if (!(e instanceof DeadLetter)) this.backend.store = before;
      throw e;
    }
  }
}

/** A JSON number written with a fraction or an exponent, kept apart from integers. */
export class JsonFloat {
  constructor(value) {
    this.value = value;
  }
  valueOf() {
    return this.value;
  }
}

/** `JSON.parse`, but numbers written as floats (`25.0`, `1e3`) come back as
 * `JsonFloat`, so that `stringifyJson` writes them as floats again. */
export function parseJson(text) {
  let i = 0;
  const fail = (what) => {
    throw new SyntaxError(`${what} at position ${i}`);
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj = {};
      ws();
      if (text[i] === "}") return i++, obj;
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a string key");
        const k = string();
        ws();
        if (text[i++] !== ":") fail("expected ':'");
        obj[k] = value();
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") return i++, obj;
        else fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const arr = [];
      ws();
      if (text[i] === "]") return i++, arr;
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") return i++, arr;
        else fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (m) {
      i += m[0].length;
      const n = Number(m[0]);
      return m[2] || m[3] ? new JsonFloat(n) : n;
    }
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) return (i += word.length), v;
    }
    return fail("unexpected character");
  };
  const string = () => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    if (i >= text.length) fail("unterminated string");
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const out = value();
  ws();
  if (i !== text.length) fail("trailing characters");
  return out;
}

/** `JSON.stringify` as the Rust SDK's serde_json writes: keys sorted, no spaces,
 * floats (`JsonFloat`, or non-integral numbers) with a fraction or exponent. */
export function stringifyJson(v) {
  if (v instanceof JsonFloat) return float(v.value);
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : float(v);
  if (Array.isArray(v)) return `[${v.map(stringifyJson).join(",")}]`;
  if (v && typeof v === "object") {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stringifyJson(v[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

function float(n) {
  if (!Number.isFinite(n)) return "null";
  const s = String(n).replace("e+", "e");
  return /[.eE]/.test(s) ? s : `${s}.0`;
}
