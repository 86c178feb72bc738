// Sends events to a Splunk HEC endpoint with Splunk's own Node.js library (splunk-logging), as an
// application would: batches of --batch events, flushed one after the other. The library does
// not retry a reply with a non-zero code (it retries network errors only, `maxRetries`); with
// --retry-busy this script, like an application, sends a batch answered "Server is busy"
// (code 9) again after the reply's Retry-After. Prints one JSON line: what was sent and seen.
"use strict";
const SplunkLogger = require("splunk-logging").Logger;
const crypto = require("crypto");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
    args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
}
const count = parseInt(args.count || "10000", 10);
const batch = parseInt(args.batch || "100", 10);
const retryBusy = args["retry-busy"] === "true";
// Written once when the first "Server is busy" is seen, for a test that waits on it.
const busyMarker = args["busy-marker"];

const logger = new SplunkLogger({
    token: args.token,
    url: args.url,
    maxBatchCount: 1000000, // flushed by hand below
});
const seen = { busy: 0, busyReplies: [], errors: [] };
// The library reports a Splunk error (non-zero code) here, with the batch it was sending.
logger.error = function (err) {
    if (err && err.code === 9) {
        seen.busy += 1;
    } else {
        seen.errors.push(String(err && err.message) + " code " + (err && err.code));
    }
};

function flush() {
    return new Promise((resolve) => {
        logger.flush((err, resp, body) => resolve({ err, resp, body }));
    });
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

function queue(ids, first) {
    ids.forEach((id, k) => {
        const seq = first + k;
        logger.send({
            message: {
                id: id,
                seq: seq,
                user: "u" + seq + "@acme.example",
                text: "tab\t quote\" unicode é ✓",
                nested: { ok: true, n: seq * 1.5, list: [1, "two", null] },
            },
            severity: "warn",
            metadata: {
                host: "node-host",
                source: "node-app",
                sourcetype: "node:json",
                index: args.index || "main",
            },
        });
    });
}

(async () => {
    const ids = [];
    const deadline = Date.now() + 180000;
    for (let first = 0; first < count; first += batch) {
        const chunk = [];
        for (let k = first; k < Math.min(count, first + batch); k++) {
            chunk.push(crypto.randomUUID());
        }
        for (;;) {
            queue(chunk, first);
            const { err, resp, body } = await flush();
            if (err) {
                seen.errors.push("request error: " + err.message);
                break;
            }
            const reply = typeof body === "string" ? body : JSON.stringify(body);
            const parsed = typeof body === "string" ? JSON.parse(body) : body;
            if (parsed && parsed.code === 9 && retryBusy && Date.now() < deadline) {
                if (busyMarker && seen.busyReplies.length === 0) {
                    require("fs").writeFileSync(busyMarker, reply);
                }
                if (seen.busyReplies.length < 3) {
                    seen.busyReplies.push({ status: resp.statusCode, body: reply,
                        retryAfter: resp.headers["retry-after"] });
                }
                await sleep(parseInt(resp.headers["retry-after"] || "1", 10) * 200);
                continue;
            }
            if (!parsed || parsed.code !== 0) {
                seen.errors.push(`HTTP ${resp.statusCode}: ${reply}`);
            }
            break;
        }
        ids.push(...chunk);
    }
    process.stdout.write(JSON.stringify({ sent: ids, seen: seen }) + "\n");
})();
