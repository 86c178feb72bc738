"""Checks the Sigma rules of content/sigma/ with pySigma.

    python sigma_rules.py convert
        Converts every rule with each backend installed in this Python: Splunk SPL,
        Elasticsearch Lucene and ES|QL, Kusto (Sentinel), DuckDB (the main test venv), or
        Datadog (its own venv: pysigma-backend-datadog needs pySigma 0.11). A correlation
        (rate) rule is converted together with the rule it counts. Prints one line per rule and
        backend; exits 1 if a conversion fails, except a correlation rule in a backend that
        pySigma says has no correlation support (Lucene, Kusto, Datadog), which is listed.
    python sigma_rules.py run EVENTS.ndjson
        Loads siemrelay `file` output (schema: flat) into DuckDB as table `logs`, converts every
        rule with pySigma-backend-duckdb and runs it. Prints a JSON object: rule name → the
        `event_id`s it matched (simple rules) or the `user_email` groups it fired for
        (correlations).
"""

import json
import sys
from pathlib import Path

import yaml
from sigma.collection import SigmaCollection

# Backends whose pySigma support includes correlation rules: a rate rule must convert there.
CORRELATING = {"splunk", "elasticsearch-esql", "duckdb"}
RULES = Path(__file__).resolve().parent.parent.parent / "content" / "sigma"


def rule_sets():
    """(name, collection, is_correlation) per rule file; a correlation with its base rules."""
    paths = sorted(RULES.glob("*.yml"))
    documents = {path: yaml.safe_load(path.read_text()) for path in paths}
    named = {doc["name"]: path for path, doc in documents.items() if doc.get("name")}
    out = []
    for path, doc in documents.items():
        correlation = doc.get("correlation")
        files = [str(named[ref]) for ref in correlation["rules"]] if correlation else []
        collection = SigmaCollection.load_ruleset(files + [str(path)])
        out.append((path.stem, collection, correlation is not None))
    return out


def backends():
    found = []
    try:
        from sigma.backends.splunk import SplunkBackend
        from sigma.backends.elasticsearch import LuceneBackend, ESQLBackend
        from sigma.backends.kusto import KustoBackend
        from sigma_backend_duckdb import DuckDBBackend
        found += [("splunk", SplunkBackend), ("elasticsearch-lucene", LuceneBackend),
                  ("elasticsearch-esql", ESQLBackend), ("kusto", KustoBackend),
                  ("duckdb", DuckDBBackend)]
    except ImportError:
        pass
    try:
        from sigma.backends.datadog import DatadogBackend
        found.append(("datadog", DatadogBackend))
    except ImportError:
        pass
    if not found:
        sys.exit("no pySigma backend installed: run scripts/setup-test-env.sh")
    return found


def convert():
    failures = 0
    for backend_name, backend in backends():
        for name, collection, correlation in rule_sets():
            try:
                queries = backend().convert(collection)
                if not queries:
                    raise ValueError("no query produced")
                print(f"{backend_name}: {name}: ok: {queries[-1]!r}")
            except NotImplementedError as error:
                if correlation and backend_name not in CORRELATING:
                    print(f"{backend_name}: {name}: no correlation support in this backend ({error})")
                else:
                    failures += 1
                    print(f"{backend_name}: {name}: FAILED: {error}")
            except Exception as error:  # any other conversion error fails the check
                failures += 1
                print(f"{backend_name}: {name}: FAILED: {type(error).__name__}: {error}")
    sys.exit(1 if failures else 0)


def run(events_path):
    import duckdb
    from sigma_backend_duckdb import DuckDBBackend

    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE logs AS SELECT * FROM read_json_auto(?, format='newline_delimited', "
        "union_by_name=true, sample_size=-1)",
        [events_path],
    )
    results = {}
    for name, collection, correlation in rule_sets():
        query = DuckDBBackend().convert(collection)[-1]
        cursor = connection.execute(query)
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
        key = "user_email" if correlation else "event_id"
        results[name] = sorted(str(row[key]) for row in rows)
    print(json.dumps(results, indent=1, sort_keys=True))


if __name__ == "__main__":
    if sys.argv[1:2] == ["convert"]:
        convert()
    elif sys.argv[1:2] == ["run"] and len(sys.argv) == 3:
        run(sys.argv[2])
    else:
        sys.exit(__doc__)
