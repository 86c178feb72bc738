"""Validates siemrelay's `ecs` and `ocsf` output against the vendored schema subsets.

    python validate_schemas.py (ecs|ocsf) EVENTS.ndjson

ecs:  every field outside the custom `siemrelay.*` namespace and `labels.*` must be an ECS field
      of tests/schemas/ecs/ecs_flat_subset.yml (ECS 8.17.0), with a value of its type (keyword and
      text: string, date: RFC 3339, long: integer, ip: an IP address), arrays only where ECS
      normalizes to an array, allowed values only, event.type among the expected types of each
      event.category; `@timestamp` and `ecs.version` present.
ocsf: a JSON Schema per class compiled from the vendored OCSF 1.1.0 files (class, parents and
      includes merged; dictionary types with their regex; enums of `*_id` attributes; required
      attributes; at_least_one constraints; no attribute the class does not define), checked
      with `jsonschema`.
Prints one line per invalid event and exits 1 if any.
"""

import datetime
import ipaddress
import json
import sys
from pathlib import Path

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def flatten(value, prefix, out):
    if isinstance(value, dict):
        for key, inner in value.items():
            flatten(inner, f"{prefix}{key}.", out)
    else:
        out[prefix[:-1]] = value


def ecs_type_ok(kind, value):
    if kind in ("keyword", "match_only_text", "text", "wildcard", "constant_keyword"):
        return isinstance(value, str)
    if kind == "long":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "ip":
        try:
            ipaddress.ip_address(value)
            return True
        except (ValueError, TypeError):
            return False
    if kind == "date":
        try:
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return True
        except (ValueError, AttributeError):
            return False
    raise ValueError(f"no check for ECS type {kind}")


def validate_ecs(event, fields):
    errors = []
    flat = {}
    flatten(event, "", flat)
    for name in ("@timestamp", "ecs.version"):
        if name not in flat:
            errors.append(f"{name} missing")
    for name, value in flat.items():
        if name.startswith("siemrelay."):
            continue
        if name.startswith("labels."):
            if not isinstance(value, str):
                errors.append(f"{name}: labels are keywords, got {value!r}")
            continue
        field = fields.get(name)
        if field is None:
            errors.append(f"{name}: not an ECS field (of the vendored subset)")
            continue
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and "array" not in field.get("normalize", []):
            errors.append(f"{name}: ECS does not normalize it to an array")
        for item in values:
            if not ecs_type_ok(field["type"], item):
                errors.append(f"{name}: {item!r} is not of ECS type {field['type']}")
            allowed = [a["name"] for a in field.get("allowed_values", [])]
            if allowed and item not in allowed:
                errors.append(f"{name}: {item!r} is not an allowed value")
    categories = flat.get("event.category", [])
    expected = {
        a["name"]: a.get("expected_event_types", [])
        for a in fields["event.category"]["allowed_values"]
    }
    for kind in flat.get("event.type", []):
        for category in categories:
            if kind not in expected.get(category, []):
                errors.append(f"event.type {kind!r} is not expected for category {category!r}")
    return errors


class Ocsf:
    """Compiles OCSF class definitions into JSON Schemas."""

    EVENT_FILES = {
        "base_event": "events/base_event.json",
        "finding": "events/findings/finding.json",
        "detection_finding": "events/findings/detection_finding.json",
        "iam": "events/iam/iam.json",
        "authentication": "events/iam/authentication.json",
    }
    BASE_TYPES = {
        "string_t": "string", "integer_t": "integer", "long_t": "integer",
        "float_t": "number", "boolean_t": "boolean",
    }

    def __init__(self, root):
        self.root = root
        self.dictionary = self.load("dictionary.json")
        self.categories = self.load("categories.json")["attributes"]
        self.defs = {}

    def load(self, path):
        return json.loads((self.root / path).read_text())

    def merged(self, data, loader):
        parent = {}
        if data.get("extends"):
            parent = loader(data["extends"])
        attributes = {k: dict(v) for k, v in parent.get("attributes", {}).items()}
        own = dict(data.get("attributes", {}))
        for include in own.pop("$include", []):
            if include.startswith("includes/"):
                for key, spec in self.load(include)["attributes"].items():
                    attributes.setdefault(key, {}).update(spec)
            # Profiles apply only when an event declares them in metadata.profiles; siemrelay
            # declares none, so their attributes are not allowed.
        for key, spec in own.items():
            attributes.setdefault(key, {}).update(spec)
        constraints = dict(parent.get("constraints", {}))
        constraints.update(data.get("constraints", {}))
        return {"attributes": attributes, "constraints": constraints,
                "category": data.get("category", parent.get("category")),
                "uid": data.get("uid", parent.get("uid"))}

    def event(self, name):
        return self.merged(self.load(self.EVENT_FILES[name]), self.event)

    def object(self, name):
        return self.merged(self.load(f"objects/{name}.json"), self.object)

    def type_schema(self, type_name):
        if type_name in self.BASE_TYPES:
            return {"type": self.BASE_TYPES[type_name]}
        if type_name == "json_t":
            return {}
        types = self.dictionary["types"]["attributes"]
        if type_name in types:
            spec = types[type_name]
            schema = dict(self.type_schema(spec["type"]))
            if spec.get("regex"):
                schema["pattern"] = spec["regex"]
            return schema
        if type_name == "object":
            return {"type": "object"}
        if (self.root / "objects" / f"{type_name}.json").exists():
            if type_name not in self.defs:
                self.defs[type_name] = {}
                self.defs[type_name] = self.compile(self.object(type_name))
            return {"$ref": f"#/$defs/{type_name}"}
        # An object this subset does not vendor: its members are not checked.
        return {"type": "object"}

    def compile(self, merged, fixed=None):
        properties, required = {}, []
        for key, spec in merged["attributes"].items():
            entry = self.dictionary["attributes"][key]
            schema = self.type_schema(spec.get("type", entry["type"]))
            enum = spec.get("enum") or entry.get("enum")
            if enum and schema.get("type") == "integer":
                schema = dict(schema, enum=sorted(int(k) for k in enum))
            if entry.get("is_array"):
                schema = {"type": "array", "items": schema}
            properties[key] = schema
            if spec.get("requirement") == "required":
                required.append(key)
        properties.update(fixed or {})
        schema = {"type": "object", "properties": properties, "required": sorted(required),
                  "additionalProperties": False}
        one_of = merged["constraints"].get("at_least_one")
        if one_of:
            schema["anyOf"] = [{"required": [key]} for key in one_of]
        return schema

    def class_schema(self, name):
        merged = self.event(name)
        category = merged["category"]
        category_uid = self.categories[category]["uid"] if category in self.categories else 0
        class_uid = category_uid * 1000 + (merged["uid"] or 0) if name != "base_event" else 0
        activities = sorted(int(k) for k in merged["attributes"]["activity_id"]["enum"])
        fixed = {
            "class_uid": {"const": class_uid},
            "category_uid": {"const": category_uid},
            "activity_id": {"enum": activities},
            "type_uid": {"enum": [class_uid * 100 + a for a in activities]},
        }
        self.defs = {}
        schema = self.compile(merged, fixed)
        schema["$defs"] = self.defs
        return class_uid, schema


def main():
    kind, path = sys.argv[1], sys.argv[2]
    events = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    failures = 0
    if kind == "ecs":
        text = (SCHEMAS / "ecs" / "ecs_flat_subset.yml").read_text()
        fields = yaml.safe_load(text)
        for number, event in enumerate(events, 1):
            for error in validate_ecs(event, fields):
                failures += 1
                print(f"event {number}: {error}")
    else:
        ocsf = Ocsf(SCHEMAS / "ocsf")
        schemas = dict(
            ocsf.class_schema(name)
            for name in ("detection_finding", "authentication", "base_event")
        )
        checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
        for number, event in enumerate(events, 1):
            schema = schemas.get(event.get("class_uid"))
            if schema is None:
                failures += 1
                print(f"event {number}: class_uid {event.get('class_uid')!r} is not a vendored class")
                continue
            validator = jsonschema.Draft202012Validator(schema, format_checker=checker)
            for error in validator.iter_errors(event):
                failures += 1
                where = "/".join(str(p) for p in error.absolute_path) or "(top)"
                print(f"event {number} (class {event['class_uid']}): {where}: {error.message}")
    classes = sorted({str(e.get("class_uid", "")) for e in events}) if kind == "ocsf" else []
    print(f"{kind}: {len(events)} events checked, {failures} problems"
          + (f", classes {', '.join(classes)}" if classes else ""))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
