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
]


def fetch() -> None:
    lines = ["# Vendored front-end libraries: package version file sha256",
             "# Regenerate with: python scripts/vendor_assets.py"]
    with tempfile.TemporaryDirectory() as tmp:
        for package, version, files, folder in PACKAGES:
            out = subprocess.run(["npm", "pack", f"{package}@{version}", "--silent"], cwd=tmp,
                                 check=True, capture_output=True, text=True).stdout.split()[-1]
            target = VENDOR / folder
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(Path(tmp) / out) as tar:
                for member, name in files.items():
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    (target / name).write_bytes(data)
                    digest = hashlib.sha256(data).hexdigest()
                    lines.append(f"{package} {version} {folder}/{name} {digest}")
            print(f"vendored {package}@{version} -> {target}")
    (VENDOR / "VERSIONS.txt").write_text("\n".join(lines) + "\n")


def check() -> int:
    bad = 0
    for line in (VENDOR / "VERSIONS.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        package, version, path, digest = line.split()
        data = (VENDOR / path).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            print(f"MISMATCH {path} ({package}@{version})")
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
