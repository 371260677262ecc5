"""The retain package as one zip for ``spark-submit --py-files``: Spark puts it on the path of the
driver and of every executor's Python workers (batch scoring runs retain's code in mapInPandas).

Only retain's own files: a zip cannot carry compiled dependencies, so numpy, pandas, pyarrow and
the rest must be installed on the nodes (on EMR, by a bootstrap action).

``python -m retain.spark.pyfiles DIR`` writes DIR/retain-<version>.zip and prints its path.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import retain

_SKIP = ("__pycache__", ".pyc")


def build_zip(out_dir: Path) -> Path:
    """Write out_dir/retain-<version>.zip from the retain package this process imports."""
    package = Path(retain.__file__).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"retain-{retain.__version__}.zip"
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package.rglob("*")):
            if path.is_file() and not any(part.endswith(_SKIP) for part in path.parts):
                archive.write(path, path.relative_to(package.parent).as_posix())
    # A spark-submit started meanwhile never ships a half-written zip.
    partial.replace(target)
    return target


if __name__ == "__main__":
    print(build_zip(Path(sys.argv[1] if len(sys.argv) > 1 else "dist")))
