"""Fetch the pinned front-end libraries from the npm registry into app/web/static/vendor/.

    python scripts/vendor_assets.py            # (re)fetch the pinned versions
    python scripts/vendor_assets.py --check    # verify the vendored files match VERSIONS.txt

To update a library, change its version below and run the script: it writes
each file with its license and records name, version and SHA-256 in
VERSIONS.txt. Needs `npm` (for `npm pack`); the server itself never fetches.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[1] / "app" / "web" / "static" / "vendor"

# package, version, {file in the tarball: name under vendor/<dir>/}, vendor dir
PACKAGES = [
    ("htmx.org", "2.0.11", {"package/dist/htmx.min.js": "htmx.min.js",
                             "package/LICENSE": "LICENSE"}, "htmx"),
    ("htmx-ext-ws", "2.0.4", {"package/dist/ws.min.js": "ws.min.js",
                              "package/LICENSE": "LICENSE"}, "htmx-ext-ws"),
    ("lightweight-charts", "5.2.1",
     {"package/dist/lightweight-charts.standalone.production.js":
      "lightweight-charts.standalone.production.js",
      "package/LICENSE": "LICENSE"}, "lightweight-charts"),
    # /docs and /redoc (app/api/docs.py): served from here, so the API docs work offline
    # and under a policy with no CDN. The bundles' *.LICENSE.txt list the licenses of
    # the code bundled into them.
    ("swagger-ui-dist", "5.35.0",
     {"package/swagger-ui-bundle.js": "swagger-ui-bundle.js",
      "package/swagger-ui-bundle.js.LICENSE.txt": "swagger-ui-bundle.js.LICENSE.txt",
      "package/swagger-ui.css": "swagger-ui.css",
      "package/favicon-32x32.png": "favicon-32x32.png",
      "package/LICENSE": "LICENSE", "package/NOTICE": "NOTICE"}, "swagger-ui"),
    # ReDoc 2 (not 3): the major version FastAPI's get_redoc_html is written for.
    ("redoc", "2.5.4",
     {"package/bundles/redoc.standalone.js": "redoc.standalone.js",
      "package/bundles/redoc.standalone.js.LICENSE.txt": "redoc.standalone.js.LICENSE.txt",
      "package/LICENSE": "LICENSE"}, "redoc"),
]

# Byte replacements applied to a vendored file after extraction, each with why. The
# script fails if the original text is not found exactly once (an update changed it:
# look again), and VERSIONS.txt records the hash of the patched file.
PATCHES: dict[str, list[tuple[bytes, bytes, str]]] = {
    "redoc/redoc.standalone.js": [(
        b'"https://cdn.redoc.ly/redoc/logo-mini.svg"',
        b'"data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E"',
        "the side menu's Redocly logo is an <img> from cdn.redoc.ly, always requested: "
        "an empty inline image instead, so /redoc requests nothing off this server "
        "(the 'API docs by Redocly' link stays)"),
    ],
}


def patch(path: str, data: bytes) -> bytes:
    for old, new, why in PATCHES.get(path, []):
        if data.count(old) != 1:
            raise SystemExit(f"{path}: expected {old!r} exactly once to patch ({why})")
        data = data.replace(old, new)
    return data


def fetch() -> None:
    lines = ["# Vendored front-end libraries: package version file sha256",
             "# Regenerate with: python scripts/vendor_assets.py"]
    lines += [f"# patched: {path}: {why}" for path, patches in PATCHES.items()
              for _, _, why in patches]
    with tempfile.TemporaryDirectory() as tmp:
        for package, version, files, folder in PACKAGES:
            out = subprocess.run(["npm", "pack", f"{package}@{version}", "--silent"], cwd=tmp,
                                 check=True, capture_output=True, text=True).stdout.split()[-1]
            target = VENDOR / folder
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(Path(tmp) / out) as tar:
                for member, name in files.items():
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    data = patch(f"{folder}/{name}", data)
                    (target / name).write_bytes(data)
                    digest = hashlib.sha256(data).hexdigest()
                    lines.append(f"{package} {version} {folder}/{name} {digest}")
            print(f"vendored {package}@{version} -> {target}")
    (VENDOR / "VERSIONS.txt").write_text("\n".join(lines) + "\n")


def check() -> int:
    bad = 0
    listed = set()
    for line in (VENDOR / "VERSIONS.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        package, version, path, digest = line.split()
        listed.add((package, version, path))
        try:
            data = (VENDOR / path).read_bytes()
        except FileNotFoundError:
            print(f"MISSING {path} ({package}@{version})")
            bad += 1
            continue
        if hashlib.sha256(data).hexdigest() != digest:
            print(f"MISMATCH {path} ({package}@{version})")
            bad += 1
    # A version changed here but not fetched yet is a mismatch too.
    for package, version, files, folder in PACKAGES:
        for name in files.values():
            if (package, version, f"{folder}/{name}") not in listed:
                print(f"NOT VENDORED {folder}/{name} ({package}@{version}): run the script")
                bad += 1
    print("vendored assets ok" if not bad else f"{bad} mismatches")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        return check()
    fetch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
