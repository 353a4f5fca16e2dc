"""Importing a ``.parquet`` file in the Hugging Face ``datasets`` layout.

An ``image`` column of structs ``{bytes, path}`` (or any binary column) and an optional
``label`` column; class names come from the ``ClassLabel`` feature in the file's
``huggingface`` metadata when present. Read with pyarrow in record batches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from imagegen.data.sources.base import Entry, Item, Source, error_item
from imagegen.errors import ImagegenError

__all__ = ["ParquetSource"]


def _pick_columns(schema: Any, image_column: str | None,
                  label_column: str | None) -> tuple[str, str | None]:
    import pyarrow as pa

    names = list(schema.names)
    if image_column is None:
        def usable(field: Any) -> bool:
            t = field.type
            if pa.types.is_binary(t) or pa.types.is_large_binary(t):
                return True
            return pa.types.is_struct(t) and any(t.field(i).name == "bytes"
                                                 for i in range(t.num_fields))
        preferred = [n for n in ("image", "img", "png", "jpg", "bytes") if n in names]
        candidates = [n for n in preferred + names if usable(schema.field(n))]
        if not candidates:
            raise ImagegenError(f"no image column found (columns: {', '.join(names)}); pass "
                                "--image-column NAME (binary bytes, or a struct with 'bytes')")
        image_column = candidates[0]
    elif image_column not in names:
        raise ImagegenError(f"no column '{image_column}' (columns: {', '.join(names)})")
    if label_column is None:
        label_column = next((n for n in ("label", "labels", "class") if n in names), None)
    elif label_column not in names:
        raise ImagegenError(f"no column '{label_column}' (columns: {', '.join(names)})")
    return image_column, label_column


def _hf_class_names(metadata: dict[bytes, bytes] | None, column: str) -> list[str] | None:
    try:
        info = json.loads((metadata or {}).get(b"huggingface", b"{}"))
        feature = info["info"]["features"][column]
        return [str(n) for n in feature["names"]] if feature.get("_type") == "ClassLabel" else None
    except (KeyError, TypeError, ValueError):
        return None


class ParquetSource(Source):
    kind = "parquet"

    def __init__(self, path: Path, image_column: str | None = None,
                 label_column: str | None = None) -> None:
        try:
            import pyarrow.parquet as pq
        except ImportError as e:
            raise ImagegenError("importing Parquet needs pyarrow; install it with "
                                "`pip install pyarrow`") from e
        self.path = path
        try:
            pf = pq.ParquetFile(path)
        except Exception as e:
            raise ImagegenError(f"cannot read Parquet file '{path}' ({e}); check that the file "
                                "is complete") from e
        self.image_column, label_col = _pick_columns(pf.schema_arrow, image_column, label_column)
        n = pf.metadata.num_rows
        labels: list[str | None] = [None] * n
        class_names = None
        if label_col is not None:
            values = pf.read(columns=[label_col]).column(0).to_pylist()
            names = _hf_class_names(pf.schema_arrow.metadata, label_col)
            ints = all(isinstance(v, int) or v is None for v in values)
            if names is None:
                uniq = sorted({v for v in values if v is not None})
                names = [str(v) for v in uniq]
            elif not ints:
                names = None
            labels = [None if v is None else (names[v] if ints and names and 0 <= v < len(names)
                                              else str(v)) for v in values]
            class_names = names
        stamp = f"{path.stat().st_size}:{path.stat().st_mtime_ns}"
        entries = [Entry(f"{path.name}#{i}", labels[i], stamp if i == 0 else "",
                         None if label_col is None or labels[i] is not None else
                         ("unlabeled", f"no value in label column '{label_col}'"))
                   for i in range(n)]
        super().__init__(str(path), entries, class_names)

    def items(self, start: int = 0) -> Iterator[Item]:
        import pyarrow.parquet as pq

        row = 0
        pf = pq.ParquetFile(self.path)
        for batch in pf.iter_batches(batch_size=256, columns=[self.image_column]):
            if row + batch.num_rows <= start:
                row += batch.num_rows
                continue
            for value in batch.column(0).to_pylist():
                row += 1
                if row <= start:
                    continue
                e = self.entries[row - 1]
                data = value.get("bytes") if isinstance(value, dict) else value
                if e.error:
                    yield error_item(*e.error)
                elif not data:
                    yield error_item("empty", f"no image bytes in column '{self.image_column}'")
                else:
                    yield Item("bytes", bytes(data))
