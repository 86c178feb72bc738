/*
 * siemrelay exporter plugin ABI, version 1.
 *
 * A plugin is a shared library (.so) exporting one symbol, SIEMRELAY_PLUGIN_ENTRY_SYMBOL:
 *
 *     const siemrelay_plugin_v1 *siemrelay_plugin_entry(uint32_t host_abi_version);
 *
 * It returns a static table whose first two fields (abi_version, table_size) never move, in
 * any ABI version. siemrelay reads abi_version first and refuses the plugin unless it equals
 * the version it was built for; only then does it read the rest of the table.
 *
 * Data crosses the boundary as bytes only:
 *  - config:  the exporter's `config:` block as one JSON object (UTF-8),
 *  - batches: NDJSON in siemrelay's event JSON form, exactly `event_count` lines, each ending
 *             in '\n' (see "Event JSON form" in plugin-sdk/README.md).
 *
 * Memory ownership:
 *  - Inputs (config, batch, exporter id) belong to siemrelay and are valid only during the call.
 *  - Outputs (siemrelay_issues, siemrelay_delivery) are structs siemrelay allocates and the
 *    plugin fills. Everything they point to belongs to the plugin and must stay valid until
 *    siemrelay calls release(owner) with the struct's `owner` field, exactly once (not at all
 *    when owner is NULL). siemrelay copies what it needs before calling release.
 *  - Strings are UTF-8, given as pointer + length (siemrelay_str), not NUL-terminated, except
 *    the table's `name` and `version` which are static NUL-terminated strings.
 *
 * Threads: every call is made on a siemrelay-owned thread that is not an async runtime worker.
 * deliver() may run on several threads at once for the same instance unless max_concurrency
 * is 1 (then calls on one instance are serialized). A call must not unwind (C++ exceptions,
 * Rust panics) into siemrelay: catch them and return an error or a retry outcome.
 */
#ifndef SIEMRELAY_PLUGIN_H
#define SIEMRELAY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes. */
#define SIEMRELAY_PLUGIN_ABI_VERSION 1u
/* The one symbol siemrelay looks up in a plugin library. */
#define SIEMRELAY_PLUGIN_ENTRY_SYMBOL "siemrelay_plugin_entry"

/* Status codes returned by validate, create and deliver. */
#define SIEMRELAY_STATUS_OK 0
#define SIEMRELAY_STATUS_ERROR 1

/* siemrelay_outcome.kind */
#define SIEMRELAY_OUTCOME_DELIVERED 0u /* the SIEM accepted it */
#define SIEMRELAY_OUTCOME_RETRY 1u     /* temporary failure: send again later */
#define SIEMRELAY_OUTCOME_PERMANENT 2u /* resending will not help: dead-letter it */

/* A UTF-8 string that is not NUL-terminated. ptr may be NULL when len is 0. */
typedef struct siemrelay_str {
    const char *ptr;
    size_t len;
} siemrelay_str;

/* One configuration problem: key is a dotted path inside the plugin's `config:` block
 * ("endpoint", "headers.Authorization"; "" for the block itself). */
typedef struct siemrelay_config_issue {
    siemrelay_str key;
    siemrelay_str message;
} siemrelay_config_issue;

/* Configuration problems, filled by validate() and create(). */
typedef struct siemrelay_issues {
    const siemrelay_config_issue *items; /* `count` entries, or NULL when count is 0 */
    size_t count;
    void *owner; /* passed to release() once siemrelay is done; NULL = nothing to release */
} siemrelay_issues;

/* The outcome of one event or of a whole batch. */
typedef struct siemrelay_outcome {
    uint32_t kind;           /* SIEMRELAY_OUTCOME_* */
    uint32_t retry_after_ms; /* RETRY only: a delay the SIEM asked for; 0 = none */
    siemrelay_str reason;    /* RETRY and PERMANENT: why (logged, shown in status and the
                                dead-letter file) */
} siemrelay_outcome;

/* What one request to the SIEM did (for status, metrics and `siemrelay test`). Optional. */
typedef struct siemrelay_request {
    uint64_t events;      /* events in the request */
    uint64_t bytes;       /* bytes sent */
    uint32_t http_status; /* 0 = no HTTP reply (transport error, not HTTP) */
    uint32_t latency_ms;  /* time from sending to the reply */
    siemrelay_str reply;  /* the SIEM's reply (truncate it) or the transport error */
} siemrelay_request;

/* The result of deliver(). */
typedef struct siemrelay_delivery {
    siemrelay_outcome batch;             /* applies to every event when outcomes is NULL */
    const siemrelay_outcome *outcomes;   /* NULL, or one outcome per event in batch order */
    size_t outcome_count;                /* must equal event_count when outcomes is not NULL */
    const siemrelay_request *requests;   /* NULL, or request_count records */
    size_t request_count;
    void *owner; /* passed to release() once siemrelay is done; NULL = nothing to release */
} siemrelay_delivery;

/* The function table of ABI version 1. */
typedef struct siemrelay_plugin_v1 {
    /* Never moves: SIEMRELAY_PLUGIN_ABI_VERSION the plugin was built for. */
    uint32_t abi_version;
    /* Never moves: sizeof(siemrelay_plugin_v1) as the plugin saw it. */
    uint32_t table_size;
    /* Static NUL-terminated plugin name and version, for logs and `siemrelay validate`. */
    const char *name;
    const char *version;
    /* Most deliver() calls one instance takes at once; 0 = no limit, 1 = serialized. */
    uint32_t max_concurrency;
    uint32_t reserved; /* zero */

    /* Checks a config (JSON object bytes) without side effects. Fills `issues` (count 0 when
     * the config is valid). Returns SIEMRELAY_STATUS_OK when `issues` was filled. */
    int32_t (*validate)(const uint8_t *config, size_t config_len, siemrelay_issues *issues);

    /* Creates an instance for exporter `exporter_id` from a config (JSON object bytes). On
     * success returns OK and sets *instance (any non-NULL pointer). On failure returns ERROR
     * and fills `issues`. */
    int32_t (*create)(siemrelay_str exporter_id, const uint8_t *config, size_t config_len,
                      void **instance, siemrelay_issues *issues);

    /* Delivers a batch: `batch_len` bytes of NDJSON holding `event_count` events. Returns OK
     * when `result` was filled; ERROR means no result (every event is retried). May block. */
    int32_t (*deliver)(void *instance, const uint8_t *batch, size_t batch_len,
                       size_t event_count, siemrelay_delivery *result);

    /* Frees what an output struct pointed to, given its `owner`. */
    void (*release)(void *owner);

    /* Destroys an instance. Called once, after its last deliver() has returned. */
    void (*destroy)(void *instance);
} siemrelay_plugin_v1;

/* The entry point every plugin exports. `host_abi_version` is the version siemrelay speaks;
 * return the table for it (or the table you have: siemrelay checks abi_version). */
typedef const siemrelay_plugin_v1 *(*siemrelay_plugin_entry_fn)(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* SIEMRELAY_PLUGIN_H */
