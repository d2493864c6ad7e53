#!/usr/bin/env python3
"""Checks every #include of the library against the dependency rules (docs/design.md).

Folders: autograd <- quant <- layers <- trainers (a folder includes its own and lower ones;
quant/codec only itself and the header-only autograd/error.h and autograd/uninit_allocator.h). Inside trainers/, each room includes only the
rooms of its row in ROOMS below, which mirrors trainers/CMakeLists.txt. Third-party headers stay
in their rooms (HDF5 in io/h5file*, yaml-cpp in recipe/, zlib in io/ and data/).
Prints file:line for every violation and exits 1; exits 0 when all is well.
Usage: scripts/check_includes.py [REPO_ROOT]   (run by ctest as Architecture.IncludeDirections)
"""
import pathlib
import re
import sys

# the header-only files of autograd/ (no Eigen, no other dependency) that quant/codec may include
CODEC_MAY_USE = ("autograd/error.h", "autograd/uninit_allocator.h")

# room -> rooms it may include (besides itself)
ROOMS = {
    "util": [],
    "dist": [],
    "recipe": ["util"],
    "io": ["util"],
    "data": ["util", "recipe"],
    "model": ["util", "recipe", "io", "data"],
    "train": ["util", "recipe", "io", "data", "model", "dist"],
    "runtime": ["util", "recipe", "io", "data", "model"],
    "report": ["util", "recipe"],
    "stages": ["util", "recipe", "io", "data", "model", "train", "runtime", "report", "interop",
               "dist"],
    "interop": ["util", "recipe", "io", "data", "model", "runtime"],
    "cli": ["util", "recipe", "io", "data", "model", "train", "runtime", "report", "stages",
            "interop", "dist"],
}
# folder -> folders it may include (besides itself)
FOLDERS = {
    "autograd": [],
    "quant": ["autograd"],
    "layers": ["quant", "autograd"],
    "trainers": ["layers", "quant", "autograd"],
}
# third-party header prefix -> path prefixes allowed to include it
THIRD_PARTY = {
    "hdf5.h": ["trainers/io/h5file"],
    "yaml-cpp/": ["trainers/recipe/"],
    "zlib.h": ["trainers/io/", "trainers/data/"],
    "mpi.h": ["trainers/dist/dist_mpi"],
}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def check_file(rel, lines, errors):
    parts = rel.split("/")
    folder = parts[0]
    room = parts[1] if folder == "trainers" and len(parts) > 2 else None
    if folder == "trainers" and room not in ROOMS:
        errors.append(f"{rel}:1: trainers/ files live in a room ({', '.join(ROOMS)}); "
                      "a new room needs its row in scripts/check_includes.py and trainers/CMakeLists.txt")
        return
    for n, line in enumerate(lines, 1):
        m = INCLUDE.match(line)
        if not m:
            continue
        kind, target = m.groups()
        if kind == "<":
            for prefix, allowed in THIRD_PARTY.items():
                if target.startswith(prefix) and not any(rel.startswith(a) for a in allowed):
                    errors.append(f"{rel}:{n}: <{target}> belongs in {' or '.join(allowed)} only")
            continue
        tparts = target.split("/")
        tfolder = tparts[0]
        if tfolder not in FOLDERS:
            continue  # not one of the library's folders (tests/, bench/ helpers)
        if tfolder != folder and tfolder not in FOLDERS[folder]:
            errors.append(f"{rel}:{n}: {folder}/ may not include {target} "
                          f"({folder}/ may use: {', '.join(FOLDERS[folder]) or 'nothing of ours'})")
            continue
        if rel.startswith("quant/codec/") and not (target.startswith("quant/codec/") or
                                                   target in CODEC_MAY_USE):
            errors.append(f"{rel}:{n}: quant/codec/ depends on nothing of ours but "
                          f"{' and '.join(CODEC_MAY_USE)}; it may not include {target}")
        if room and tfolder == "trainers":
            troom = tparts[1] if len(tparts) > 2 else None
            if troom != room and troom not in ROOMS[room]:
                errors.append(f"{rel}:{n}: trainers/{room}/ may not include {target} "
                              f"({room} may use: {', '.join(ROOMS[room]) or 'nothing of trainers'})")


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent)
    errors, files = [], 0
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix not in (".h", ".cpp"):
                continue
            files += 1
            rel = path.relative_to(root).as_posix()
            check_file(rel, path.read_text(errors="replace").splitlines(), errors)
    for e in errors:
        print(e)
    if errors:
        print(f"check_includes: {len(errors)} include(s) cross a forbidden direction (docs/design.md)")
        return 1
    print(f"check_includes: {files} files, every include goes the allowed way")
    return 0


if __name__ == "__main__":
    sys.exit(main())
