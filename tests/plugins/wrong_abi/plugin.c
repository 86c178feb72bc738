/* A plugin built for a future ABI version: siemrelay must refuse it without reading further. */
#include <stdint.h>

typedef struct future_table {
    uint32_t abi_version;
    uint32_t table_size;
    void *anything_else[32];
} future_table;

static const future_table TABLE = {99u, sizeof(future_table), {0}};

const future_table *siemrelay_plugin_entry(uint32_t host_abi_version) {
    (void)host_abi_version;
    return &TABLE;
}
