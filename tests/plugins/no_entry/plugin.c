/* A shared library that is not a siemrelay plugin: it exports no siemrelay_plugin_entry. */
int some_other_function(int x) { return x + 1; }
