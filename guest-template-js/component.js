// The build entry: binds the processor to the broker's imports and exports the
// rustmq:etl/etl-batch@1.1.0 world (see build.sh). Natively, test app.js instead.
import * as host from "rustmq:etl/host@1.1.0";
import * as state from "rustmq:etl/state@1.1.0";
import { bind } from "./rustmq-etl.js";
import { processor } from "./app.js";

export const { init, process, processBatch } = bind(processor, { host, state });
