/* Prints the layout of every ABI struct as the C compiler sees it; abi_layout.rs compares it
 * with Rust's view. Static asserts pin the constants. */
#include "siemrelay_plugin.h"
#include <stdio.h>
#include <string.h>

_Static_assert(SIEMRELAY_PLUGIN_ABI_VERSION == 1u, "ABI version");
_Static_assert(SIEMRELAY_OUTCOME_DELIVERED == 0u && SIEMRELAY_OUTCOME_RETRY == 1u &&
                   SIEMRELAY_OUTCOME_PERMANENT == 2u,
               "outcome kinds");
_Static_assert(SIEMRELAY_STATUS_OK == 0 && SIEMRELAY_STATUS_ERROR == 1, "status codes");
_Static_assert(offsetof(siemrelay_plugin_v1, abi_version) == 0, "abi_version never moves");
_Static_assert(offsetof(siemrelay_plugin_v1, table_size) == 4, "table_size never moves");

#define SIZE(T) printf("size %s %zu %zu\n", #T, sizeof(T), _Alignof(T))
#define FIELD(T, f) printf("offset %s.%s %zu\n", #T, #f, offsetof(T, f))

int main(void) {
    printf("constant ABI_VERSION %u\n", SIEMRELAY_PLUGIN_ABI_VERSION);
    printf("constant ENTRY_SYMBOL %s\n", SIEMRELAY_PLUGIN_ENTRY_SYMBOL);
    SIZE(siemrelay_str);
    FIELD(siemrelay_str, ptr);
    FIELD(siemrelay_str, len);
    SIZE(siemrelay_config_issue);
    FIELD(siemrelay_config_issue, key);
    FIELD(siemrelay_config_issue, message);
    SIZE(siemrelay_issues);
    FIELD(siemrelay_issues, items);
    FIELD(siemrelay_issues, count);
    FIELD(siemrelay_issues, owner);
    SIZE(siemrelay_outcome);
    FIELD(siemrelay_outcome, kind);
    FIELD(siemrelay_outcome, retry_after_ms);
    FIELD(siemrelay_outcome, reason);
    SIZE(siemrelay_request);
    FIELD(siemrelay_request, events);
    FIELD(siemrelay_request, bytes);
    FIELD(siemrelay_request, http_status);
    FIELD(siemrelay_request, latency_ms);
    FIELD(siemrelay_request, reply);
    SIZE(siemrelay_delivery);
    FIELD(siemrelay_delivery, batch);
    FIELD(siemrelay_delivery, outcomes);
    FIELD(siemrelay_delivery, outcome_count);
    FIELD(siemrelay_delivery, requests);
    FIELD(siemrelay_delivery, request_count);
    FIELD(siemrelay_delivery, owner);
    SIZE(siemrelay_plugin_v1);
    FIELD(siemrelay_plugin_v1, abi_version);
    FIELD(siemrelay_plugin_v1, table_size);
    FIELD(siemrelay_plugin_v1, name);
    FIELD(siemrelay_plugin_v1, version);
    FIELD(siemrelay_plugin_v1, max_concurrency);
    FIELD(siemrelay_plugin_v1, reserved);
    FIELD(siemrelay_plugin_v1, validate);
    FIELD(siemrelay_plugin_v1, create);
    FIELD(siemrelay_plugin_v1, deliver);
    FIELD(siemrelay_plugin_v1, release);
    FIELD(siemrelay_plugin_v1, destroy);
    return 0;
}
