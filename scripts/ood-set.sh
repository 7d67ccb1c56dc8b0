#!/usr/bin/env bash
# Assembles a set of real images that are not chest X-rays, for measuring the
# out-of-distribution warning's catch rate: the sample images shipped inside the
# scikit-image 0.24.0 wheel from PyPI (photographs, textures, microscopy, a retina,
# astronomy, text, a CT phantom). Nothing is committed; the set goes to runs/ood-set.
#   bash scripts/ood-set.sh && cargo run --release --bin xray -- ood-eval runs/ood-set
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/ood-set
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux2014_x86_64 scikit-image==0.24.0 -d "$tmp"
mkdir -p "$out"
python3 - "$tmp" "$out" <<'PY'
import pathlib, sys, zipfile
tmp, out = map(pathlib.Path, sys.argv[1:])
wheel = next(tmp.glob("scikit_image-*.whl"))
n = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        p = pathlib.PurePosixPath(name)
        if p.parent.as_posix() == "skimage/data" and p.suffix.lower() in {".png", ".jpg", ".gif", ".tif"}:
            (out / p.name).write_bytes(z.read(name))
            n += 1
print(f"{n} images in {out}")
PY
