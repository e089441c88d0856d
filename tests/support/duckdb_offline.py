"""DuckDB with its extensions loaded from the pinned PyPI packages: no download, signatures checked."""

from __future__ import annotations

import glob
import os

import duckdb


def _extension(module_name: str, name: str) -> str:
    module = __import__(module_name)
    pattern = os.path.join(os.path.dirname(module.__file__), "extensions", "*", f"{name}.duckdb_extension")
    return glob.glob(pattern)[0]


def connect(*extensions: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions=false; SET autoload_known_extensions=false")
    for name in extensions:  # allow_unsigned_extensions stays off: these are the signed binaries
        con.execute(f"LOAD '{_extension(f'duckdb_extension_{name}', name)}'")
    return con
