"""The deployment guide's example processor, in Python: it stamps ``processed_at``,
rewrites JSON bodies (adds ``_processed``, converts Celsius to Fahrenheit), filters
unwanted messages and adds enrichment headers. The same logic as the Rust template
(``guest-template/``), and the same outputs byte for byte.

Edit :func:`transform_message` and its helpers; ``test_app.py`` tests them natively
(``python -m pytest``), and ``build.sh`` builds the component."""

import json
import time

from rustmq_etl import Output, Retry, Transform, export, log

#: Values larger than this (in bytes) are filtered out unless the pipeline sets the
#: ``max_value_bytes`` parameter.
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024


class Processor(Transform):
    """The module: the settings ``init`` accepted, read by every call."""

    def init(self, params):
        self.max_value_bytes = DEFAULT_MAX_VALUE_BYTES
        if "max_value_bytes" in params:
            value = params["max_value_bytes"]
            try:
                self.max_value_bytes = int(value)
            except ValueError:
                raise ValueError(
                    f"parameter max_value_bytes must be a whole number of bytes, got {value!r}"
                ) from None

    def process(self, msg, ctx):
        outputs = transform_message(Output.of(msg), self.max_value_bytes, int(time.time()))
        if not outputs:
            log("debug", f"filtered offset {ctx.source_offset} of {ctx.source_topic}")
        return outputs


def transform_message(out, max_value_bytes, now_secs):
    """One message in, zero or one out. ``now_secs`` is passed in so that tests are
    deterministic. A value that is not the JSON its content type says is retried."""
    out = out.with_header("processed_at", str(now_secs))
    if out.header("content-type") == "application/json":
        out = transform_json(out)
    if should_filter(out, max_value_bytes):
        return []
    return [enrich(out)]


def transform_json(out):
    """Marks a JSON object as processed and adds ``temperature_fahrenheit`` when it has
    a numeric ``temperature_celsius``."""
    try:
        body = json.loads(out.value)
    except ValueError as e:
        raise Retry(f"Invalid JSON: {e}") from None
    if isinstance(body, dict):
        body["_processed"] = True
        body["_processor_version"] = "1.0.0"
        celsius = body.get("temperature_celsius")
        if isinstance(celsius, (int, float)) and not isinstance(celsius, bool):
            body["temperature_fahrenheit"] = float(celsius) * 9.0 / 5.0 + 32.0
    # Keys sorted, no spaces: what the Rust template's serde_json writes.
    return out.with_value(json.dumps(body, sort_keys=True, separators=(",", ":")))


def should_filter(out, max_value_bytes):
    """Whether a message is dropped: no ``source`` header, too large, or spam."""
    if out.header("source") is None or len(out.value) > max_value_bytes:
        return True
    try:
        text = out.value.decode()
    except UnicodeDecodeError:
        return False
    return "SPAM" in text or "DELETE" in text


def enrich(out):
    """The enrichment headers, and geolocation when a ``client_ip`` header is there."""
    out = out.with_header("enriched", "true").with_header("processor", "message-processor-v1")
    ip = out.header("client_ip")
    if ip is not None:
        country, city = lookup_geolocation(ip)
        out = out.with_header("geo_country", country).with_header("geo_city", city)
    return out


def lookup_geolocation(ip):
    """A stand-in for a real lookup: prefix matching only."""
    if ip.startswith("192.168.") or ip.startswith("10."):
        return "Local", "Private Network"
    if ip.startswith("8.8."):
        return "US", "Mountain View"
    return "Unknown", "Unknown"


WitWorld = export(Processor)
