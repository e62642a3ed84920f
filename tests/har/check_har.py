"""Checks a HAR file the way a user's tools would read it.

Usage: python check_har.py SCHEMA_DIR HAR_FILE

1. Validates the file against the HAR 1.2 JSON Schema (the `har-schema` npm package's files in
   SCHEMA_DIR), with every $ref resolved and date-time formats checked.
2. Opens it with haralyzer (PyPI), a HAR reader, and reads its pages and entries.

Prints one JSON object describing what the reader saw; exits 1 with the errors when the file does
not validate or the reader fails on it.
"""

import json
import pathlib
import sys

from haralyzer import HarParser
from jsonschema import Draft6Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT6


def validate(schema_dir, har):
    resources = []
    for path in sorted(pathlib.Path(schema_dir).glob("*.json")):
        contents = json.loads(path.read_text())
        uri = contents["$id"].rstrip("#")
        resources.append((uri, Resource.from_contents(contents, default_specification=DRAFT6)))
    registry = Registry().with_resources(resources)
    root = registry.contents("har.json")
    validator = Draft6Validator(
        root, registry=registry, format_checker=Draft6Validator.FORMAT_CHECKER
    )
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(har)]


def read(har):
    parser = HarParser(har)
    pages = []
    for page in parser.pages:
        entries = page.entries
        pages.append(
            {
                "id": page.page_id,
                "title": page.title,
                "url": page.url,
                "entries": [
                    {
                        "url": entry.url,
                        "method": entry.request.method,
                        "status": entry.status,
                        "time": entry.time,
                        "request_headers": entry.request.headers,
                        "request_cookies": entry.request.get("cookies", []),
                        "response_headers": entry.response.headers,
                        "response_cookies": entry.response.get("cookies", []),
                        "mime_type": entry.response.mimeType,
                        "timings": entry.timings,
                        "initiator": entry.raw_entry.get("_initiator"),
                        "redirect_url": entry.response.get("redirectURL", ""),
                    }
                    for entry in entries
                ],
                "page_size": page.page_size,
                "initial_load_time": page.initial_load_time,
            }
        )
    return {"creator": har["log"]["creator"], "pages": pages}


def main():
    schema_dir, har_file = sys.argv[1], sys.argv[2]
    har = json.loads(pathlib.Path(har_file).read_text())
    errors = validate(schema_dir, har)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)
    print(json.dumps(read(har)))


if __name__ == "__main__":
    main()
