/*
 * A siemrelay exporter plugin in plain C, proving the plugin ABI is a C ABI.
 *
 * config: {"output": "/path/to/file"}  (required)
 * Appends every received event line to `output`, then answers per event from the summary:
 *   "retry-me"  -> retryable (retry_after_ms 10),
 *   "reject-me" -> permanent,
 *   anything else -> delivered.
 * max_concurrency is 1: siemrelay never calls deliver() twice at once on an instance.
 *
 * Build: cc -shared -fPIC -I plugin-sdk/include -o libc_echo.so tests/plugins/c_echo/plugin.c
 */
#include "siemrelay_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct echo {
    FILE *out;
} echo;

static const char RETRY[] = "c_echo retries retry-me";
static const char REJECT[] = "c_echo rejects reject-me";

static siemrelay_str str(const char *text) {
    siemrelay_str s = {text, strlen(text)};
    return s;
}

/* Finds "output":"..." in the config and copies the value (no escapes supported). */
static char *output_path(const uint8_t *config, size_t len) {
    char *text = malloc(len + 1);
    if (!text) return NULL;
    memcpy(text, config, len);
    text[len] = '\0';
    char *path = NULL;
    char *key = strstr(text, "\"output\"");
    if (key) {
        char *colon = strchr(key + 8, ':');
        char *open = colon ? strchr(colon, '"') : NULL;
        char *close = open ? strchr(open + 1, '"') : NULL;
        if (close && close > open + 1) {
            path = malloc((size_t)(close - open));
            if (path) {
                memcpy(path, open + 1, (size_t)(close - open - 1));
                path[close - open - 1] = '\0';
            }
        }
    }
    free(text);
    return path;
}

static siemrelay_config_issue MISSING_OUTPUT;
static siemrelay_config_issue CANNOT_OPEN;

static void one_issue(siemrelay_issues *issues, siemrelay_config_issue *issue, const char *key,
                      const char *message) {
    issue->key = str(key);
    issue->message = str(message);
    issues->items = issue; /* static: nothing to release */
    issues->count = 1;
    issues->owner = NULL;
}

static int32_t echo_validate(const uint8_t *config, size_t len, siemrelay_issues *issues) {
    char *path = output_path(config, len);
    if (!path) {
        one_issue(issues, &MISSING_OUTPUT, "output", "is required: the file to write batches to");
    } else {
        free(path);
        issues->items = NULL;
        issues->count = 0;
        issues->owner = NULL;
    }
    return SIEMRELAY_STATUS_OK;
}

static int32_t echo_create(siemrelay_str exporter_id, const uint8_t *config, size_t len,
                           void **instance, siemrelay_issues *issues) {
    (void)exporter_id;
    char *path = output_path(config, len);
    if (!path) {
        one_issue(issues, &MISSING_OUTPUT, "output", "is required: the file to write batches to");
        return SIEMRELAY_STATUS_ERROR;
    }
    FILE *out = fopen(path, "a");
    free(path);
    echo *self = out ? malloc(sizeof(echo)) : NULL;
    if (!self) {
        if (out) fclose(out);
        one_issue(issues, &CANNOT_OPEN, "output", "cannot open the output file");
        return SIEMRELAY_STATUS_ERROR;
    }
    self->out = out;
    *instance = self;
    return SIEMRELAY_STATUS_OK;
}

static int contains(const uint8_t *line, size_t len, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(line + i, needle, n) == 0) return 1;
    }
    return 0;
}

static int32_t echo_deliver(void *instance, const uint8_t *batch, size_t batch_len,
                            size_t event_count, siemrelay_delivery *result) {
    echo *self = instance;
    siemrelay_outcome *outcomes = calloc(event_count ? event_count : 1, sizeof(siemrelay_outcome));
    if (!outcomes) return SIEMRELAY_STATUS_ERROR;
    if (fwrite(batch, 1, batch_len, self->out) != batch_len || fflush(self->out) != 0) {
        free(outcomes);
        return SIEMRELAY_STATUS_ERROR;
    }
    size_t start = 0, index = 0;
    for (size_t i = 0; i < batch_len && index < event_count; i++) {
        if (batch[i] != '\n') continue;
        const uint8_t *line = batch + start;
        size_t len = i - start;
        siemrelay_outcome *o = &outcomes[index++];
        if (contains(line, len, "\"summary\":\"retry-me\"")) {
            o->kind = SIEMRELAY_OUTCOME_RETRY;
            o->retry_after_ms = 10;
            o->reason = str(RETRY);
        } else if (contains(line, len, "\"summary\":\"reject-me\"")) {
            o->kind = SIEMRELAY_OUTCOME_PERMANENT;
            o->reason = str(REJECT);
        } else {
            o->kind = SIEMRELAY_OUTCOME_DELIVERED;
        }
        start = i + 1;
    }
    memset(result, 0, sizeof(*result));
    result->outcomes = outcomes;
    result->outcome_count = event_count;
    result->owner = outcomes; /* release() frees the array */
    return SIEMRELAY_STATUS_OK;
}

static void echo_release(void *owner) { free(owner); }

static void echo_destroy(void *instance) {
    echo *self = instance;
    fclose(self->out);
    free(self);
}

static const siemrelay_plugin_v1 TABLE = {
    .abi_version = SIEMRELAY_PLUGIN_ABI_VERSION,
    .table_size = sizeof(siemrelay_plugin_v1),
    .name = "c_echo",
    .version = "1.0.0",
    .max_concurrency = 1,
    .reserved = 0,
    .validate = echo_validate,
    .create = echo_create,
    .deliver = echo_deliver,
    .release = echo_release,
    .destroy = echo_destroy,
};

const siemrelay_plugin_v1 *siemrelay_plugin_entry(uint32_t host_abi_version) {
    (void)host_abi_version;
    return &TABLE;
}
