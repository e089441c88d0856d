"""Only the compiled order-book side lives here (everything else is in pyproject.toml). `optional=True`:
without a C compiler the install still succeeds and `operators.book.levels` uses its pure-Python side."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "operators.book._levels",
            ["operators/book/_levels.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        )
    ]
)
