"""Only the compiled extensions live here (everything else is in pyproject.toml). `optional=True`: without a
C compiler the install still succeeds; `operators.book.levels` then uses its pure-Python side and the
Binance parser its msgspec/orjson path."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "operators.book._levels",
            ["operators/book/_levels.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        ),
        Extension(
            "connectors.binance._depth",
            ["connectors/binance/_depth.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        ),
        Extension(
            "cryptoflow._level_block",
            ["cryptoflow/_level_block.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        ),
    ]
)
