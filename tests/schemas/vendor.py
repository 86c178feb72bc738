"""Re-makes the vendored schema subsets under tests/schemas/ from local git clones.

Not run by the tests (they read the vendored files); kept so the subsets can be checked and
re-made.  Usage:

    python3 tests/schemas/vendor.py ECS_CLONE OCSF_CLONE

ECS: `generated/ecs/ecs_flat.yml` at tag v8.17.0 of github.com/elastic/ecs, only the fields
siemrelay's `ecs` shape writes, with their type, normalization and allowed values.
OCSF: the files of the classes siemrelay's `ocsf` shape writes (Detection Finding, Authentication,
Base Event), their parents, includes and objects, at tag v1.1.0 of github.com/ocsf/ocsf-schema,
unchanged except `dictionary.json`, cut to the attributes those files use.
"""

import json
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ECS_TAG = "v8.17.0"
OCSF_TAG = "v1.1.0"
ECS_FIELDS = [
    "@timestamp", "ecs.version", "message", "labels", "log.level",
    "event.id", "event.kind", "event.category", "event.type", "event.action",
    "event.severity", "event.created", "event.provider", "event.outcome",
    "user.email", "user.name", "user.id", "source.ip", "source.port",
    "destination.ip", "destination.port", "host.name", "observer.product",
    "observer.name", "observer.hostname", "organization.id", "rule.name", "rule.id",
    "user_agent.original",
]
OCSF_FILES = [
    "version.json", "categories.json",
    "events/base_event.json", "events/findings/finding.json",
    "events/findings/detection_finding.json", "events/iam/iam.json",
    "events/iam/authentication.json", "includes/classification.json",
    "includes/occurrence.json", "objects/object.json", "objects/_entity.json",
    "objects/metadata.json", "objects/product.json", "objects/finding_info.json",
    "objects/user.json", "objects/service.json", "objects/endpoint.json",
    "objects/network_endpoint.json",
]


def show(clone, tag, path):
    return subprocess.run(
        ["git", "-C", clone, "show", f"refs/tags/{tag}:{path}"],
        check=True, capture_output=True,
    ).stdout


def commit(clone, tag):
    return subprocess.run(
        ["git", "-C", clone, "rev-parse", f"refs/tags/{tag}^{{commit}}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def vendor_ecs(clone):
    flat = yaml.safe_load(show(clone, ECS_TAG, "generated/ecs/ecs_flat.yml"))
    keep = {}
    for name in ECS_FIELDS:
        field = flat[name]
        entry = {"type": field["type"], "level": field["level"]}
        if field.get("normalize"):
            entry["normalize"] = field["normalize"]
        if field.get("object_type"):
            entry["object_type"] = field["object_type"]
        if field.get("allowed_values"):
            entry["allowed_values"] = [
                {k: v for k, v in value.items() if k in ("name", "expected_event_types")}
                for value in field["allowed_values"]
            ]
        keep[name] = entry
    header = (
        f"# A subset of Elastic Common Schema {ECS_TAG[1:]}: generated/ecs/ecs_flat.yml of\n"
        f"# github.com/elastic/ecs at tag {ECS_TAG} (commit {commit(clone, ECS_TAG)}),\n"
        "# only the fields siemrelay's `schema: ecs` writes, with type, normalization and allowed\n"
        "# values (descriptions dropped). Made by tests/schemas/vendor.py.\n"
    )
    text = header + yaml.safe_dump(keep, sort_keys=True, width=100)
    (HERE / "ecs" / "ecs_flat_subset.yml").write_text(text)


def vendor_ocsf(clone):
    used = set()
    for path in OCSF_FILES:
        data = json.loads(show(clone, OCSF_TAG, path))
        if path.startswith(("events/", "includes/", "objects/")):
            used.update(k for k in data.get("attributes", {}) if k != "$include")
        out = HERE / "ocsf" / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(show(clone, OCSF_TAG, path))
    dictionary = json.loads(show(clone, OCSF_TAG, "dictionary.json"))
    dictionary["attributes"] = {
        k: v for k, v in dictionary["attributes"].items() if k in used
    }
    (HERE / "ocsf" / "dictionary.json").write_text(json.dumps(dictionary, indent=2) + "\n")
    (HERE / "ocsf" / "SOURCE").write_text(
        f"github.com/ocsf/ocsf-schema tag {OCSF_TAG} (commit {commit(clone, OCSF_TAG)}).\n"
        "The files listed in tests/schemas/vendor.py, unchanged, except dictionary.json,\n"
        "cut to the attributes those files use. Made by tests/schemas/vendor.py.\n"
    )


if __name__ == "__main__":
    vendor_ecs(sys.argv[1])
    vendor_ocsf(sys.argv[2])
