"""An independent LEEF 2.0 / CEF parser and conformance checker, written from the vendor specs.

Reads one event per line on stdin (each line starts with ``LEEF:`` or ``CEF:``) and writes one JSON
object per line on stdout: ``{"format", "header", "pairs", "violations"}``. ``violations`` lists
every way the line breaks its spec; a conforming line has none.

Sources (the rules below are taken from them, not from siemrelay's code):

* IBM, *Log Event Extended Format (LEEF) Version 2* (QRadar DSM documentation, "LEEF event
  components" and "Predefined LEEF event attributes"):
  - header ``LEEF:2.0|Vendor|Product|Version|EventID|DelimiterCharacter|``; fields are separated by
    ``|`` and the guide defines no escape sequence, so a field is everything between two pipes;
  - the delimiter is one character, or its hex code written ``0x09`` or ``x09``; LEEF 1.0 uses tab;
  - event attributes are ``key=value`` pairs separated by the delimiter; a value runs to the next
    delimiter; the predefined keys have the types in ``LEEF_TYPES``.
* Micro Focus / ArcSight, *Implementing ArcSight Common Event Format (CEF)*:
  - header ``CEF:Version|Device Vendor|Device Product|Device Version|Device Event Class ID|Name|
    Severity|Extension``; in the header a pipe is written ``\\|`` and a backslash ``\\\\``;
  - Severity is 0-10 (or Unknown/Low/Medium/High/Very-High);
  - the extension is space-separated ``key=value`` pairs; in values ``=`` is ``\\=``, ``\\`` is
    ``\\\\``, a line break is ``\\n`` or ``\\r``; values may contain spaces; the dictionary keys
    have the types in ``CEF_TYPES``.
* Both: a custom key is one word of letters, digits and underscore (siemrelay's promise, checked
  here because common parsers split keys on anything else).
"""

import ipaddress
import json
import re
import sys

WORD = re.compile(r"^[A-Za-z0-9_]+$")


def is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def is_int(text):
    return re.fullmatch(r"[0-9]{1,19}", text) is not None


def is_port(text):
    return is_int(text) and int(text) <= 65535


def is_mac(text):
    return re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", text) is not None


def is_bool(text):
    return text in ("true", "false")


def is_float(text):
    try:
        value = float(text)
    except ValueError:
        return False
    return value == value and value not in (float("inf"), float("-inf"))


def is_sev_leef(text):
    return is_int(text) and 1 <= int(text) <= 10


def is_any(_text):
    return True


# IBM's table of predefined LEEF attributes: key -> value check.
LEEF_TYPES = {
    "cat": is_any, "devTime": is_any, "devTimeFormat": is_any, "proto": is_any,
    "sev": is_sev_leef, "src": is_ip, "dst": is_ip, "srcPort": is_port, "dstPort": is_port,
    "srcPreNAT": is_ip, "dstPreNAT": is_ip, "srcPostNAT": is_ip, "dstPostNAT": is_ip,
    "usrName": is_any, "srcMAC": is_mac, "dstMAC": is_mac, "srcPreNATPort": is_port,
    "dstPreNATPort": is_port, "srcPostNATPort": is_port, "dstPostNATPort": is_port,
    "identSrc": is_ip, "identHostName": is_any, "identNetBios": is_any, "identGrpName": is_any,
    "identMAC": is_mac, "vSrc": is_ip, "vSrcName": is_any, "accountName": is_any,
    "srcBytes": is_int, "dstBytes": is_int, "srcPackets": is_int, "dstPackets": is_int,
    "totalPackets": is_int, "role": is_any, "realm": is_any, "policy": is_any,
    "resource": is_any, "url": is_any, "groupID": is_any, "domain": is_any,
    "isLoginEvent": is_bool, "isLogoutEvent": is_bool, "identSecondlp": is_ip,
    "calLanguage": is_any, "AttributeLimits": is_any, "calCountryOrRegion": is_any,
}

# The typed keys of ArcSight's CEF extension dictionary: key -> value check.
CEF_TYPES = {
    "src": is_ip, "dst": is_ip, "dvc": is_ip, "sourceTranslatedAddress": is_ip,
    "destinationTranslatedAddress": is_ip, "deviceTranslatedAddress": is_ip,
    "c6a1": is_ip, "c6a2": is_ip, "c6a3": is_ip, "c6a4": is_ip,
    "spt": is_port, "dpt": is_port, "sourceTranslatedPort": is_port,
    "destinationTranslatedPort": is_port, "cnt": is_int, "in": is_int, "out": is_int,
    "spid": is_int, "dpid": is_int, "dvcpid": is_int, "fsize": is_int, "oldFileSize": is_int,
    "cn1": is_int, "cn2": is_int, "cn3": is_int, "type": is_int, "deviceDirection": is_int,
    "cfp1": is_float, "cfp2": is_float, "cfp3": is_float, "cfp4": is_float,
    "smac": is_mac, "dmac": is_mac, "dvcmac": is_mac,
    "rt": is_int, "art": is_int, "start": is_int, "end": is_int,
    "deviceCustomDate1": is_int, "deviceCustomDate2": is_int, "fileCreateTime": is_int,
    "fileModificationTime": is_int, "oldFileCreateTime": is_int,
    "oldFileModificationTime": is_int,
}


def check_pairs(pairs, types, violations, value_rule):
    seen = set()
    for key, value in pairs:
        if not WORD.match(key):
            violations.append(f"key {key!r} is not one word of letters, digits, underscore")
        if key in seen:
            violations.append(f"key {key!r} appears twice")
        seen.add(key)
        check = types.get(key)
        if check is not None and not check(value):
            violations.append(f"predefined key {key!r} holds {value[:60]!r} of the wrong type")
        value_rule(key, value)


def parse_leef(line):
    violations = []
    if not line.startswith("LEEF:"):
        raise ValueError("not LEEF")
    body = line[len("LEEF:"):]
    fields = body.split("|", 6)
    if fields[0] == "1.0":
        fields = body.split("|", 5)
        if len(fields) < 6:
            raise ValueError("LEEF 1.0 needs 5 header fields")
        delimiter = "\t"
        rest = fields[5]
        header = fields[:5]
    elif fields[0] == "2.0":
        if len(fields) < 7:
            raise ValueError("LEEF 2.0 needs 6 header fields")
        spec = fields[5]
        match = re.fullmatch(r"(?:0x|x)([0-9A-Fa-f]{1,4})", spec)
        if match:
            delimiter = chr(int(match.group(1), 16))
        elif len(spec) == 1:
            delimiter = spec
        else:
            raise ValueError(f"delimiter {spec!r} is neither one character nor a hex code")
        rest = fields[6]
        header = fields[:6]
    else:
        raise ValueError(f"unknown LEEF version {fields[0]!r}")
    for name, value in zip(["version", "vendor", "product", "product_version", "event_id"], header):
        if value.endswith("\\"):
            violations.append(f"header {name} ends with a backslash (reads as an escaped pipe)")
        if "\\|" in value:
            violations.append(f"header {name} holds an escaped pipe")
        if any(ord(c) < 0x20 for c in value):
            violations.append(f"header {name} holds a control character")
    pairs = []
    if rest:
        for item in rest.split(delimiter):
            if "=" not in item:
                violations.append(f"attribute {item[:60]!r} has no '='")
                continue
            key, value = item.split("=", 1)
            pairs.append((key, value))

    def value_rule(key, value):
        if "\t" in value:
            violations.append(f"value of {key!r} holds a tab")
        if "\n" in value or "\r" in value:
            violations.append(f"value of {key!r} holds a line break")

    check_pairs(pairs, LEEF_TYPES, violations, value_rule)
    return {
        "format": "leef",
        "header": {
            "version": header[0], "vendor": header[1], "product": header[2],
            "product_version": header[3], "event_id": header[4], "delimiter": delimiter,
        },
        "pairs": pairs,
        "violations": violations,
    }


def split_cef_header(text, count):
    """Splits ``count`` pipe-separated fields, undoing ``\\|`` and ``\\\\``; returns them and the rest."""
    fields, current, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "|\\":
            current.append(text[i + 1])
            i += 2
            continue
        if c == "|":
            fields.append("".join(current))
            current = []
            if len(fields) == count:
                return fields, text[i + 1:]
        else:
            current.append(c)
        i += 1
    raise ValueError(f"CEF needs {count} header fields")


KEY_START = re.compile(r"(?:^| )([A-Za-z0-9_.\-\[\]]+)=")


def parse_cef(line):
    violations = []
    if not line.startswith("CEF:"):
        raise ValueError("not CEF")
    header, extension = split_cef_header(line[len("CEF:"):], 7)
    if header[0] != "0":
        violations.append(f"CEF version {header[0]!r} is not 0")
    severity = header[6]
    if not (re.fullmatch(r"10|[0-9]", severity) or severity in
            ("Unknown", "Low", "Medium", "High", "Very-High")):
        violations.append(f"severity {severity!r} is not 0-10")
    # Positions of unescaped '=' that start a pair: a key preceded by a space (or the start).
    starts = []
    for match in KEY_START.finditer(extension):
        eq = match.end() - 1
        backslashes = 0
        j = eq - 1
        while j >= 0 and extension[j] == "\\":
            backslashes += 1
            j -= 1
        if backslashes % 2 == 0:
            starts.append((match.start(1), match.group(1), match.end()))
    pairs = []
    for index, (_, key, value_start) in enumerate(starts):
        end = starts[index + 1][0] - 1 if index + 1 < len(starts) else len(extension)
        raw = extension[value_start:end]
        if re.search(r"(?<!\\)(?:\\\\)*=", raw):
            violations.append(f"value of {key!r} holds an unescaped '='")
        value, i = [], 0
        while i < len(raw):
            c = raw[i]
            if c == "\\" and i + 1 < len(raw):
                nxt = raw[i + 1]
                value.append({"\\": "\\", "=": "=", "n": "\n", "r": "\r"}.get(nxt, "\\" + nxt))
                i += 2
                continue
            if c in "\r\n":
                violations.append(f"value of {key!r} holds a raw line break")
            value.append(c)
            i += 1
        pairs.append((key, "".join(value)))
    check_pairs(pairs, CEF_TYPES, violations, lambda key, value: None)
    return {
        "format": "cef",
        "header": {
            "version": header[0], "vendor": header[1], "product": header[2],
            "product_version": header[3], "signature_id": header[4], "name": header[5],
            "severity": severity,
        },
        "pairs": pairs,
        "violations": violations,
    }


def main():
    for line in sys.stdin.read().split("\n"):
        if not line:
            continue
        try:
            if line.startswith("LEEF:"):
                result = parse_leef(line)
            else:
                result = parse_cef(line)
        except ValueError as error:
            result = {"format": None, "header": {}, "pairs": [], "violations": [str(error)]}
        print(json.dumps(result))


if __name__ == "__main__":
    main()
